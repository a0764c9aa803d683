//! Durations on the command line: `30s`, `10m`, `7d`, `1h30m`, `500ms`, `2w`.

use std::time::Duration;

/// Parses a duration: numbers, each with a unit (`ms`, `s`, `m`, `h`, `d`,
/// `w`), added up. Used as a clap value parser.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let bad =
        |why: &str| format!("{text:?} is not a duration ({why}); write e.g. 30s, 10m, 7d or 1h30m");
    let text_trimmed = text.trim();
    if text_trimmed.is_empty() {
        return Err(bad("empty"));
    }
    let mut total = 0f64;
    let mut rest = text_trimmed;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(bad("a number must come first"));
        }
        let value: f64 = rest[..number_len]
            .parse()
            .map_err(|_| bad("not a number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            "" => return Err(bad("a unit is missing")),
            _ => return Err(bad("unknown unit")),
        };
        rest = &rest[unit_len..];
        total += value * seconds;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad("out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums_are_read() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse("2w"), Ok(Duration::from_secs(14 * 86_400)));
    }

    #[test]
    fn malformed_durations_say_what_to_write() {
        for bad in ["", "30", "s", "10x", "1h30", "-5s", "abc"] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("e.g. 30s"), "{bad}: {error}");
        }
    }
}
