#!/usr/bin/env bash
# Times hx.drain (history-layouts.sql) for both layouts, alternating.
# usage: history-layouts.sh PSQL-ARGS... ; env N (jobs, 20000), REPS (3), HIST (finished rows preloaded, 0)
#   psql -d scratch -f history-layouts.sql && N=20000 REPS=5 HIST=1000000 ./history-layouts.sh -d scratch
set -euo pipefail
N=${N:-20000}; REPS=${REPS:-3}; HIST=${HIST:-0}
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
for rep in $(seq 1 "$REPS"); do
  for kind in a b; do
    psql "$@" -c "TRUNCATE hx.jobs_a, hx.jobs_b, hx.history_b"
    if [ "$HIST" -gt 0 ]; then
      psql "$@" -c "INSERT INTO hx.jobs_a (id, task, queue, state, attempt, started_at, finished_at, result)
        SELECT gen_random_uuid(), 'noop', 'bench', 'completed', 1, t, t, 'null' FROM (SELECT now() - make_interval(secs => 30*86400.0*g/$HIST) t FROM generate_series(1,$HIST) g) s"
      psql "$@" -c "INSERT INTO hx.history_b (id, task, queue, state, attempt, started_at, finished_at, result)
        SELECT gen_random_uuid(), 'noop', 'bench', 'completed', 1, t, t, 'null' FROM (SELECT now() - make_interval(secs => 30*86400.0*g/$HIST) t FROM generate_series(1,$HIST) g) s"
      psql "$@" -c "VACUUM ANALYZE hx.jobs_a" -c "VACUUM ANALYZE hx.history_b"
    fi
    psql "$@" -c "INSERT INTO hx.jobs_$kind (id, task, queue) SELECT gen_random_uuid(), 'noop', 'bench' FROM generate_series(1,$N)"
    psql "$@" -c "CHECKPOINT"
    out=$(psql "$@" -At -c "\timing on" -c "CALL hx.drain('$kind', 100)" | grep -i 'time:' | sed 's/Time: \([0-9.]*\) ms.*/\1/')
    awk -v k=$kind -v r=$rep -v n=$N -v ms="$out" -v h=$HIST 'BEGIN{printf "kind=%s rep=%d hist=%d %.0f jobs/s (%.0f ms)\n", k, r, h, n/(ms/1000), ms}'
  done
done
