//! Wall-clock time as people read it (UTC), for lock holders and backup names. Hand-written
//! because it is one conversion (days since 1970 to a civil date) and no dependency does less.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC time stamp: year, month, day, hour, minute, second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(time: SystemTime) -> Stamp {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        Stamp::from_unix_seconds(seconds)
    }

    /// Howard Hinnant's `civil_from_days`.
    pub fn from_unix_seconds(seconds: i64) -> Stamp {
        let days = seconds.div_euclid(86_400);
        let of_day = seconds.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        let narrow = |value: i64| u32::try_from(value).unwrap_or_default();
        Stamp {
            year,
            month: narrow(month),
            day: narrow(day),
            hour: narrow(of_day / 3600),
            minute: narrow(of_day % 3600 / 60),
            second: narrow(of_day % 60),
        }
    }

    /// `2026-12-01T140309Z`: sorts as text in time order, safe in a file name.
    pub fn compact(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

impl std::fmt::Display for Stamp {
    /// `2026-12-01 14:03:09 UTC`.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Stamp;

    #[test]
    fn unix_seconds_become_the_civil_date() {
        assert_eq!(Stamp::from_unix_seconds(0).to_string(), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            Stamp::from_unix_seconds(951_782_400).to_string(),
            "2000-02-29 00:00:00 UTC"
        );
        assert_eq!(Stamp::from_unix_seconds(1_796_133_789).compact(), "2026-12-01T140309Z");
        assert_eq!(
            Stamp::from_unix_seconds(4_107_542_399).to_string(),
            "2100-02-28 23:59:59 UTC"
        );
    }
}
