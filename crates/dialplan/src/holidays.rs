//! Public-holiday calendars: the built-in German ones and custom ones from dialplan files.

use std::collections::BTreeMap;

use jiff::civil::{Date, Weekday};
use toml::de::{DeTable, DeValue};

use crate::diag::Reporter;
use crate::walk::{self, SpannedStr};

/// Text of the built-in calendars (federal and the 16 Länder).
pub(crate) const BUILTIN_TEXT: &str = include_str!("holidays_de.toml");
/// Path shown in diagnostics about the built-in calendars.
pub(crate) const BUILTIN_PATH: &str = "<built-in holidays_de.toml>";

/// How a holiday's date is found in a given year.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayRule {
    /// Same month and day every year.
    Fixed { month: i8, day: i8 },
    /// One date only.
    Once(Date),
    /// Days after Easter Sunday (Gregorian computus).
    Easter(i16),
    /// The last `weekday` strictly before month-day (Buß- und Bettag: Wednesday before 23 Nov).
    WeekdayBefore {
        weekday: Weekday,
        month: i8,
        day: i8,
    },
}

#[derive(Debug, Clone)]
struct Holiday {
    rule: DayRule,
    name: String,
}

/// A named set of holidays, optionally extending another calendar.
#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    pub(crate) title: String,
    pub(crate) extends: Option<SpannedStr>,
    days: Vec<Holiday>,
}

/// All calendars known to a plan, by id (`de-bw`, or a custom name).
#[derive(Debug, Clone, Default)]
pub(crate) struct Calendars {
    pub(crate) by_id: BTreeMap<String, Calendar>,
}

/// Extends chains longer than this are cut (a cycle is reported at compile time).
const MAX_EXTENDS_DEPTH: usize = 8;

impl Calendars {
    /// The name of the holiday on `date` in calendar `id`, following `extends`.
    pub(crate) fn holiday(&self, id: &str, date: Date) -> Option<&str> {
        let mut current = Some(id);
        for _ in 0..MAX_EXTENDS_DEPTH {
            let cal = self.by_id.get(current?)?;
            if let Some(h) = cal.days.iter().find(|h| h.rule.falls_on(date)) {
                return Some(&h.name);
            }
            current = cal.extends.as_ref().map(|e| e.text.as_str());
        }
        None
    }

    /// All holidays of `id` in `year`, sorted, for tests and listings.
    pub(crate) fn dates_in_year(&self, id: &str, year: i16) -> Vec<(Date, String)> {
        let Ok(mut d) = Date::new(year, 1, 1) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while d.year() == year {
            if let Some(name) = self.holiday(id, d) {
                out.push((d, name.to_string()));
            }
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => break,
            }
        }
        out
    }
}

impl DayRule {
    fn falls_on(&self, date: Date) -> bool {
        match *self {
            DayRule::Fixed { month, day } => date.month() == month && date.day() == day,
            DayRule::Once(d) => d == date,
            DayRule::Easter(offset) => easter_sunday(date.year()).is_some_and(|e| {
                i32::from(date.day_of_year()) - i32::from(e.day_of_year()) == i32::from(offset)
            }),
            DayRule::WeekdayBefore {
                weekday,
                month,
                day,
            } => {
                let Ok(anchor) = Date::new(date.year(), month, day) else {
                    return false;
                };
                let back = (anchor.weekday().to_monday_zero_offset()
                    - weekday.to_monday_zero_offset()
                    + 6)
                    % 7
                    + 1;
                anchor
                    .checked_sub(jiff::Span::new().days(i64::from(back)))
                    .is_ok_and(|d| d == date)
            }
        }
    }
}

/// Easter Sunday in the Gregorian calendar (anonymous Gregorian algorithm, Meeus/Jones/Butcher).
pub(crate) fn easter_sunday(year: i16) -> Option<Date> {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// Parses "mon".."sun" or the German "mo".."so".
pub(crate) fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" | "mo" | "montag" => Weekday::Monday,
        "tue" | "tuesday" | "di" | "dienstag" => Weekday::Tuesday,
        "wed" | "wednesday" | "mi" | "mittwoch" => Weekday::Wednesday,
        "thu" | "thursday" | "do" | "donnerstag" => Weekday::Thursday,
        "fri" | "friday" | "fr" | "freitag" => Weekday::Friday,
        "sat" | "saturday" | "sa" | "samstag" => Weekday::Saturday,
        "sun" | "sunday" | "so" | "sonntag" => Weekday::Sunday,
        _ => return None,
    })
}

/// Parses "MM-DD" (every year) or "YYYY-MM-DD" (once).
fn parse_date(s: &str) -> Option<DayRule> {
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [m, d] if m.len() == 2 && d.len() == 2 => {
            let (month, day) = (m.parse::<i8>().ok()?, d.parse::<i8>().ok()?);
            // 2000 is a leap year, so 02-29 is accepted.
            Date::new(2000, month, day).ok()?;
            Some(DayRule::Fixed { month, day })
        }
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => Some(DayRule::Once(
            Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()?,
        )),
        _ => None,
    }
}

const CALENDAR_KEYS: &[&str] = &["name", "extends", "days"];
const DAY_KEYS: &[&str] = &["date", "easter", "weekday", "before", "name"];
const DATE_HELP: &str = "write \"12-24\" for every year or \"2026-12-24\" for one day";

/// Parses one `[calendars.ID]` table (or one table of the built-in file).
pub(crate) fn parse_calendar(r: &mut Reporter<'_>, id: &str, t: &DeTable<'_>) -> Option<Calendar> {
    let mut cal = Calendar {
        title: id.to_string(),
        extends: None,
        days: Vec::new(),
    };
    let mut ok = true;
    for (k, v) in t.iter() {
        match k.get_ref().as_ref() {
            "name" => match walk::string(r, v, "calendar name", "name = \"Rathaus Musterstadt\"") {
                Some(s) => cal.title = s.text,
                None => ok = false,
            },
            "extends" => match walk::string(r, v, "extends", "extends = \"de-bw\"") {
                Some(s) => cal.extends = Some(s),
                None => ok = false,
            },
            "days" => {
                let DeValue::Array(items) = v.get_ref() else {
                    walk::wrong_type(
                        r,
                        v,
                        "days",
                        "a list",
                        "days = [\"12-24\", { easter = -2, name = \"Karfreitag\" }]",
                    );
                    ok = false;
                    continue;
                };
                for item in items.iter() {
                    match parse_day(r, item) {
                        Some(h) => cal.days.push(h),
                        None => ok = false,
                    }
                }
            }
            _ => {
                walk::unknown_key(r, k, CALENDAR_KEYS, "a calendar");
                ok = false;
            }
        }
    }
    ok.then_some(cal)
}

fn parse_day(r: &mut Reporter<'_>, item: &walk::Val<'_>) -> Option<Holiday> {
    match item.get_ref() {
        DeValue::String(s) => match parse_date(s) {
            Some(rule) => Some(Holiday {
                rule,
                name: s.to_string(),
            }),
            None => {
                r.error(
                    item.span(),
                    format!("\"{s}\" is not a date"),
                    Some(DATE_HELP.into()),
                );
                None
            }
        },
        DeValue::Table(t) => {
            let mut name = None;
            let mut rule = None;
            let mut weekday = None;
            let mut before = None;
            let mut ok = true;
            for (k, v) in t.iter() {
                match k.get_ref().as_ref() {
                    "name" => {
                        name = walk::string(r, v, "holiday name", "name = \"Heiligabend\"")
                            .map(|s| s.text)
                    }
                    "date" => {
                        let s = walk::string(r, v, "date", "date = \"12-24\"")?;
                        match parse_date(&s.text) {
                            Some(d) => rule = Some(d),
                            None => {
                                r.error(
                                    s.span,
                                    format!("\"{}\" is not a date", s.text),
                                    Some(DATE_HELP.into()),
                                );
                                ok = false;
                            }
                        }
                    }
                    "easter" => {
                        let n = walk::integer(r, v, "easter", -100..=100)?;
                        rule = Some(DayRule::Easter(i16::try_from(n).ok()?));
                    }
                    "weekday" => {
                        let s = walk::string(r, v, "weekday", "weekday = \"wed\"")?;
                        match parse_weekday(&s.text) {
                            Some(w) => weekday = Some(w),
                            None => {
                                r.error(
                                    s.span,
                                    format!("\"{}\" is not a weekday", s.text),
                                    Some("use mon, tue, wed, thu, fri, sat, sun".into()),
                                );
                                ok = false;
                            }
                        }
                    }
                    "before" => {
                        let s = walk::string(r, v, "before", "before = \"11-23\"")?;
                        match parse_date(&s.text) {
                            Some(DayRule::Fixed { month, day }) => before = Some((month, day)),
                            _ => {
                                r.error(
                                    s.span,
                                    format!("\"{}\" is not a month-day", s.text),
                                    Some("write it as \"11-23\"".into()),
                                );
                                ok = false;
                            }
                        }
                    }
                    _ => {
                        walk::unknown_key(r, k, DAY_KEYS, "a holiday");
                        ok = false;
                    }
                }
            }
            if let (Some(weekday), Some((month, day))) = (weekday, before) {
                rule = Some(DayRule::WeekdayBefore {
                    weekday,
                    month,
                    day,
                });
            }
            let Some(rule) = rule else {
                if ok {
                    r.error(
                        item.span(),
                        "holiday has no date".into(),
                        Some("give `date`, `easter`, or `weekday` with `before`".into()),
                    );
                }
                return None;
            };
            ok.then(|| Holiday {
                name: name.unwrap_or_else(|| "holiday".into()),
                rule,
            })
        }
        _ => {
            walk::wrong_type(
                r,
                item,
                "a holiday",
                "a date string or a table",
                "\"12-24\"",
            );
            None
        }
    }
}

/// Parses the built-in calendars; a failure here is a bug caught by the tests.
pub(crate) fn builtin(out: &mut Vec<crate::Diagnostic>) -> Calendars {
    let mut cals = Calendars::default();
    let mut r = Reporter {
        file: BUILTIN_PATH,
        text: BUILTIN_TEXT,
        out,
    };
    match DeTable::parse(BUILTIN_TEXT) {
        Ok(root) => {
            for (k, v) in root.get_ref().iter() {
                if let Some(t) = walk::table(&mut r, v, "calendar", "[de-bw]")
                    && let Some(cal) = parse_calendar(&mut r, k.get_ref(), t)
                {
                    cals.by_id.insert(k.get_ref().to_string(), cal);
                }
            }
        }
        Err(e) => r.error(e.span().unwrap_or(0..0), e.message().to_string(), None),
    }
    cals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin_ok() -> Calendars {
        let mut diags = Vec::new();
        let cals = builtin(&mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        cals
    }

    #[test]
    fn easter_dates_2025_to_2030() {
        let want = [
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
        ];
        for (y, m, d) in want {
            assert_eq!(easter_sunday(y), Date::new(y, m, d).ok(), "{y}");
        }
    }

    #[test]
    fn builtin_has_federal_and_all_sixteen_laender() {
        let cals = builtin_ok();
        assert_eq!(cals.by_id.len(), 17);
        for id in cals.by_id.keys().filter(|id| *id != "de") {
            assert_eq!(
                cals.by_id[id].extends.as_ref().map(|e| e.text.as_str()),
                Some("de"),
                "{id}"
            );
        }
    }

    #[test]
    fn builtin_matches_independent_reference_2025_to_2030() {
        let cals = builtin_ok();
        let reference = include_str!("../tests/fixtures/holidays_de_2025_2030.txt");
        let mut lines = 0;
        for line in reference.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split_whitespace();
            let (Some(id), Some(year)) = (parts.next(), parts.next()) else {
                panic!("bad fixture line {line}");
            };
            let want: Vec<String> = parts.map(str::to_string).collect();
            let year: i16 = year
                .parse()
                .unwrap_or_else(|_| panic!("bad year in {line}"));
            let got: Vec<String> = cals
                .dates_in_year(id, year)
                .iter()
                .map(|(d, _)| d.to_string())
                .collect();
            assert_eq!(got, want, "{id} {year}");
            lines += 1;
        }
        assert_eq!(lines, 16 * 6);
    }

    #[test]
    fn buss_und_bettag_is_wednesday_before_23_november() {
        let cals = builtin_ok();
        let d = |y, m, d| Date::new(y, m, d).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            cals.holiday("de-sn", d(2026, 11, 18)),
            Some("Buß- und Bettag")
        );
        // 23 Nov 2022 was itself a Wednesday: the holiday is the week before.
        assert_eq!(
            cals.holiday("de-sn", d(2022, 11, 16)),
            Some("Buß- und Bettag")
        );
        assert_eq!(cals.holiday("de-sn", d(2022, 11, 23)), None);
        assert_eq!(cals.holiday("de-bw", d(2026, 11, 18)), None);
    }
}
