//! Calendar arithmetic in China Standard Time (UTC+8, no daylight saving), on timestamps in
//! milliseconds since the Unix epoch. Only ever fed the timestamp the leader stamped on a
//! command: the core never reads a clock.

use crate::types::YearMonth;

/// One day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;
/// China Standard Time is UTC+8 all year round.
pub const CST_OFFSET_MS: u64 = 8 * 3_600_000;

/// The China Standard Time day number (days since 1970-01-01 CST) of a timestamp. The e-Pay
/// daily limit resets when this changes.
pub fn cst_day(now_ms: u64) -> u64 {
    (now_ms + CST_OFFSET_MS) / DAY_MS
}

/// The civil date (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
/// The proleptic Gregorian calendar, computed through 400-year eras so it is exact.
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    // Shift the epoch to 0000-03-01 so that the leap day is the last day of a "year".
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year as u32, month as u32, day as u32)
}

/// Days since 1970-01-01 of a civil date; the inverse of `civil_from_days`.
fn days_from_civil(year: u32, month: u32, day: u32) -> u64 {
    let year = u64::from(year) - u64::from(month <= 2);
    let era = year / 400;
    let year_of_era = year % 400;
    let month = u64::from(month);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + u64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The CST month a timestamp falls in.
pub fn cst_month(now_ms: u64) -> YearMonth {
    let (year, month, _) = civil_from_days(cst_day(now_ms));
    YearMonth(year * 12 + month - 1)
}

/// The first millisecond (UTC epoch ms) of a CST month. Months before 1970 clamp to 0.
pub fn month_start_ms(month: YearMonth) -> u64 {
    if month.year() < 1970 {
        return 0;
    }
    let days = days_from_civil(month.year(), month.month(), 1);
    (days * DAY_MS).saturating_sub(CST_OFFSET_MS)
}

/// The first millisecond (UTC epoch ms) of a CST day number. Day 0 clamps to 0.
pub fn cst_day_start_ms(day: u64) -> u64 {
    day.saturating_mul(DAY_MS).saturating_sub(CST_OFFSET_MS)
}

/// The CST day number of a civil date, if the date exists (years 1970 to 9999).
pub fn cst_day_of_date(year: u32, month: u32, day: u32) -> Option<u64> {
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => return None,
    };
    ((1970..=9999).contains(&year) && (1..=days_in_month).contains(&day))
        .then(|| days_from_civil(year, month, day))
}

/// The civil date (year, month, day) of a CST day number.
pub fn cst_date(day: u64) -> (u32, u32, u32) {
    civil_from_days(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cst_day_runs_from_midnight_to_midnight_beijing_time() {
        let day = cst_day_of_date(2026, 12, 2).unwrap();
        assert_eq!(cst_date(day), (2026, 12, 2));
        // 2026-12-02 00:00 CST is 2026-12-01 16:00 UTC.
        assert_eq!(cst_day_start_ms(day), 1_796_140_800_000);
        assert_eq!(cst_day(cst_day_start_ms(day)), day);
        assert_eq!(cst_day(cst_day_start_ms(day) - 1), day - 1);
        assert_eq!(
            cst_day_of_date(2024, 2, 29).map(cst_date),
            Some((2024, 2, 29))
        );
        assert_eq!(cst_day_of_date(2026, 2, 29), None);
        assert_eq!(cst_day_of_date(2026, 13, 1), None);
        assert_eq!(cst_day_of_date(2026, 4, 31), None);
        assert_eq!(cst_day_of_date(1969, 12, 31), None);
    }

    #[test]
    fn cst_day_turns_at_midnight_beijing_time() {
        // 2014-12-01 00:00 CST is 2014-11-30 16:00 UTC = 1417363200000 ms.
        let midnight = 1_417_363_200_000;
        assert_eq!(cst_day(midnight - 1) + 1, cst_day(midnight));
        assert_eq!(cst_month(midnight), YearMonth::new(2014, 12).unwrap());
        assert_eq!(cst_month(midnight - 1), YearMonth::new(2014, 11).unwrap());
        assert_eq!(month_start_ms(YearMonth::new(2014, 12).unwrap()), midnight);
    }

    #[test]
    fn civil_dates_round_trip_across_leap_years_and_centuries() {
        for days in (0..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
        assert_eq!(
            civil_from_days(days_from_civil(2100, 3, 1) - 1),
            (2100, 2, 28)
        );
    }

    #[test]
    fn month_starts_are_consecutive() {
        let jan = YearMonth::new(2015, 1).unwrap();
        let feb = jan.next();
        assert_eq!(month_start_ms(feb) - month_start_ms(jan), 31 * DAY_MS);
        assert_eq!(cst_month(month_start_ms(feb)), feb);
    }
}
