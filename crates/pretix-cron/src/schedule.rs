//! The schedule: cron's five fields, parsed the way Debian's cron reads them, limited to what
//! pretix's guide asks for ("an interval between 1 minute and 1 hour"). Pure.
//!
//! Only the minute field may be anything but `*`: then the job runs at least once an hour, every
//! hour of every day, and the longest gap between two runs (the interval `verify` measures
//! against) is known exactly. The same minutes become the timer's `OnCalendar=`.

use std::collections::BTreeSet;

use pretix_site::ToolError;

const FIELD: &str = "cron.schedule";

/// A validated schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The minutes past the hour the job runs at, 0 to 59, at least one.
    minutes: BTreeSet<u8>,
    /// The minute field as given (whitespace-free, validated).
    minute_field: String,
}

impl Schedule {
    /// Parses and checks the five fields.
    pub fn parse(text: &str) -> Result<Schedule, ToolError> {
        if let Some(bad) = text.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(ToolError::input(
                FIELD,
                format!(
                    "contains the control character {}: give five fields on one line, e.g. 15,45 * * * *",
                    bad.escape_debug()
                ),
            ));
        }
        if text.trim_start().starts_with('@') {
            return Err(ToolError::input(
                FIELD,
                format!(
                    "{:?}: give cron's five fields instead of a @ shortcut, e.g. 0 * * * * for @hourly (between \
                     every minute and every hour, as pretix's guide asks)",
                    text.trim()
                ),
            ));
        }
        let fields: Vec<&str> = text.split([' ', '\t']).filter(|field| !field.is_empty()).collect();
        if fields.len() != 5 {
            return Err(ToolError::input(
                FIELD,
                format!(
                    "{:?} has {} fields, cron needs five (minute hour day month weekday; the command is not \
                     part of it): e.g. 15,45 * * * *",
                    text.trim(),
                    fields.len()
                ),
            ));
        }
        let names = ["hour", "day of month", "month", "day of week"];
        for (name, field) in names.iter().zip(&fields[1..]) {
            if *field != "*" {
                return Err(ToolError::input(
                    FIELD,
                    format!(
                        "{:?}: the {name} field is {field:?}; pretix's periodic job must run between every minute \
                         and every hour, so only the minute field may be set and the other four must be *",
                        text.trim()
                    ),
                ));
            }
        }
        let minutes = parse_minutes(fields[0]).map_err(|problem| {
            ToolError::input(
                FIELD,
                format!(
                    "the minute field {:?} {problem}; e.g. 15,45 (the guide), */10 or 0",
                    fields[0]
                ),
            )
        })?;
        Ok(Schedule {
            minutes,
            minute_field: fields[0].to_owned(),
        })
    }

    /// The schedule as the cron.d line starts: the minute field and four `*`.
    pub fn cron_fields(&self) -> String {
        format!("{} * * * *", self.minute_field)
    }

    /// The same minutes as a systemd calendar event, at second 0.
    pub fn on_calendar(&self) -> String {
        if self.minutes.len() == 60 {
            return "*-*-* *:*:00".to_owned();
        }
        let minutes: Vec<String> = self.minutes.iter().map(|minute| format!("{minute:02}")).collect();
        format!("*-*-* *:{}:00", minutes.join(","))
    }

    /// The longest gap between two runs, in minutes (1 to 60).
    pub fn interval_minutes(&self) -> u32 {
        let minutes: Vec<u32> = self.minutes.iter().map(|minute| u32::from(*minute)).collect();
        let (Some(first), Some(last)) = (minutes.first(), minutes.last()) else {
            return 60;
        };
        let wrap = first + 60 - last;
        minutes
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .chain(std::iter::once(wrap))
            .max()
            .unwrap_or(60)
    }

    /// The minutes past the hour, ascending.
    pub fn minutes(&self) -> impl Iterator<Item = u8> + '_ {
        self.minutes.iter().copied()
    }
}

/// The minute field: a comma list of `*`, `N` or `N-M`, each optionally with `/STEP`, as
/// Debian's cron accepts it (a step needs `*` or a range before it).
fn parse_minutes(field: &str) -> Result<BTreeSet<u8>, String> {
    let mut minutes = BTreeSet::new();
    for item in field.split(',') {
        if item.is_empty() {
            return Err("has an empty list entry".to_owned());
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step = number(step)
                    .filter(|step| (1..=59).contains(step))
                    .ok_or_else(|| format!("has the step {step:?}: a step is a whole number from 1 to 59"))?;
                if !(range == "*" || range.contains('-')) {
                    return Err(format!(
                        "has {item:?}: cron steps need * or a range before the /, e.g. */{step} or {range}-59/{step}"
                    ));
                }
                (range, step)
            }
            None => (item, 1),
        };
        let (start, end) = if range == "*" {
            (0, 59)
        } else if let Some((start, end)) = range.split_once('-') {
            let start = minute(start)?;
            let end = minute(end)?;
            if start > end {
                return Err(format!("has the range {range:?}, which runs backwards"));
            }
            (start, end)
        } else {
            let single = minute(range)?;
            (single, single)
        };
        minutes.extend((start..=end).step_by(usize::from(step)));
    }
    Ok(minutes)
}

fn minute(text: &str) -> Result<u8, String> {
    number(text)
        .filter(|minute| *minute <= 59)
        .ok_or_else(|| format!("has {text:?} where a minute from 0 to 59 belongs"))
}

/// Digits only: no sign, no spaces, no names.
fn number(text: &str) -> Option<u8> {
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(text: &str) -> Vec<u8> {
        Schedule::parse(text).expect("valid").minutes().collect()
    }

    fn refused(text: &str) -> String {
        match Schedule::parse(text) {
            Err(error) => error.to_string(),
            Ok(schedule) => panic!("{text:?} was accepted as {schedule:?}"),
        }
    }

    #[test]
    fn the_guides_schedule_runs_twice_an_hour() {
        let schedule = Schedule::parse("15,45 * * * *").expect("valid");
        assert_eq!(schedule.minutes().collect::<Vec<_>>(), [15, 45]);
        assert_eq!(schedule.interval_minutes(), 30);
        assert_eq!(schedule.on_calendar(), "*-*-* *:15,45:00");
        assert_eq!(schedule.cron_fields(), "15,45 * * * *");
    }

    #[test]
    fn steps_ranges_and_lists_are_read_as_cron_reads_them() {
        assert_eq!(minutes("*/20 * * * *"), [0, 20, 40]);
        assert_eq!(minutes("10-30/10,59 * * * *"), [10, 20, 30, 59]);
        assert_eq!(minutes("5-7 * * * *"), [5, 6, 7]);
        assert_eq!(minutes("0 * * * *"), [0]);
        assert_eq!(minutes("*\t*  * * *").len(), 60);
    }

    #[test]
    fn the_interval_is_the_longest_gap_including_the_turn_of_the_hour() {
        let interval = |text: &str| Schedule::parse(text).expect("valid").interval_minutes();
        assert_eq!(interval("* * * * *"), 1);
        assert_eq!(interval("0 * * * *"), 60);
        assert_eq!(interval("0,10 * * * *"), 50);
        assert_eq!(interval("*/7 * * * *"), 7);
        assert_eq!(interval("50,55 * * * *"), 55);
    }

    #[test]
    fn every_minute_is_a_plain_calendar_event() {
        assert_eq!(
            Schedule::parse("* * * * *").expect("valid").on_calendar(),
            "*-*-* *:*:00"
        );
        assert_eq!(
            Schedule::parse("*/15 * * * *").expect("valid").on_calendar(),
            "*-*-* *:00,15,30,45:00"
        );
    }

    #[test]
    fn only_five_fields_with_a_minute_field_are_accepted() {
        assert!(refused("15,45 * * *").contains("has 4 fields, cron needs five"));
        assert!(refused("15,45 * * * * root").contains("has 6 fields"));
        assert!(refused("").contains("has 0 fields"));
        assert!(refused("@hourly").contains("instead of a @ shortcut"));
        assert!(refused("0 3 * * *").contains("the hour field is \"3\""));
        assert!(refused("0 * * * 1-5").contains("the day of week field"));
        assert!(refused("*/5 */2 * * *").contains("only the minute field may be set"));
    }

    #[test]
    fn bad_minute_fields_say_what_is_wrong() {
        assert!(refused("60 * * * *").contains("\"60\" where a minute from 0 to 59 belongs"));
        assert!(refused("-1 * * * *").contains("where a minute"));
        assert!(refused("30-10 * * * *").contains("runs backwards"));
        assert!(refused("*/0 * * * *").contains("the step \"0\""));
        assert!(refused("5/10 * * * *").contains("need * or a range before the /"));
        assert!(refused("15,,45 * * * *").contains("empty list entry"));
        assert!(refused("MON * * * *").contains("where a minute"));
        assert!(refused("+5 * * * *").contains("where a minute"));
    }

    #[test]
    fn injected_lines_and_commands_are_refused() {
        assert!(refused("15 * * * *\n* * * * * root rm -rf /").contains("control character \\n"));
        assert!(refused("15 * * * * root /bin/sh -c id").contains("has 9 fields"));
        assert!(refused("15;id * * * *").contains("where a minute"));
        assert!(refused("% * * * *").contains("where a minute"));
    }
}
