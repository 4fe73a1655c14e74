//! Time windows (`when = { weekdays, hours, holidays, calendar }`) evaluated in local civil time.

use jiff::civil::{Date, DateTime};
use toml::de::DeTable;

use crate::diag::Reporter;
use crate::holidays::{Calendars, parse_weekday};
use crate::walk::{self, SpannedStr};

/// What a window says about public holidays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HolidayMode {
    /// Holidays do not matter.
    Ignore,
    /// The window is closed on holidays.
    Exclude,
    /// The window is open on holidays only.
    Only,
}

/// One time window; a rule's `when` may list several, and any one of them opens the rule.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    /// Bit 0 = Monday ... bit 6 = Sunday.
    weekdays: u8,
    /// Minutes since midnight, [start, end); end < start crosses midnight into the next day.
    hours: Vec<(u16, u16)>,
    pub(crate) holidays: HolidayMode,
    /// Calendar id; `None` until the plan's default calendar is filled in.
    pub(crate) calendar: Option<SpannedStr>,
    /// The window as written, for `explain`.
    pub(crate) text: String,
}

const WINDOW_KEYS: &[&str] = &["weekdays", "hours", "holidays", "calendar"];
const ALL_DAYS: u8 = 0b111_1111;

impl Window {
    /// Parses one `when` table.
    pub(crate) fn parse(r: &mut Reporter<'_>, t: &DeTable<'_>) -> Option<Window> {
        let mut w = Window {
            weekdays: ALL_DAYS,
            hours: Vec::new(),
            holidays: HolidayMode::Ignore,
            calendar: None,
            text: String::new(),
        };
        let (mut days_text, mut hours_text) = (None, None);
        let mut ok = true;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "weekdays" => {
                    let Some(s) = walk::string(r, v, "weekdays", "weekdays = \"mon-fri\"") else {
                        ok = false;
                        continue;
                    };
                    match parse_weekdays(&s.text) {
                        Some(mask) => w.weekdays = mask,
                        None => {
                            r.error(
                                s.span,
                                format!("\"{}\" is not a list of weekdays", s.text),
                                Some("write ranges and lists like \"mon-fri\", \"sat,sun\" or \"mo-do,fr\"".into()),
                            );
                            ok = false;
                        }
                    }
                    days_text = Some(s.text);
                }
                "hours" => {
                    let Some(s) = walk::string(r, v, "hours", "hours = \"08:00-16:00\"") else {
                        ok = false;
                        continue;
                    };
                    match parse_hours(&s.text) {
                        Ok(h) => w.hours = h,
                        Err(msg) => {
                            r.error(
                                s.span,
                                msg,
                                Some("write \"08:00-12:00,13:00-16:00\"; \"22:00-06:00\" runs past midnight".into()),
                            );
                            ok = false;
                        }
                    }
                    hours_text = Some(s.text);
                }
                "holidays" => {
                    let Some(s) = walk::string(r, v, "holidays", "holidays = \"exclude\"") else {
                        ok = false;
                        continue;
                    };
                    w.holidays = match s.text.as_str() {
                        "exclude" => HolidayMode::Exclude,
                        "only" => HolidayMode::Only,
                        "ignore" => HolidayMode::Ignore,
                        other => {
                            r.error(
                                s.span,
                                format!("holidays = \"{other}\" is not understood"),
                                Some("use \"exclude\" (closed on holidays), \"only\" (holidays only) or \"ignore\"".into()),
                            );
                            ok = false;
                            HolidayMode::Ignore
                        }
                    };
                }
                "calendar" => match walk::string(r, v, "calendar", "calendar = \"de-bw\"") {
                    Some(s) => w.calendar = Some(s),
                    None => ok = false,
                },
                _ => {
                    walk::unknown_key(r, k, WINDOW_KEYS, "`when`");
                    ok = false;
                }
            }
        }
        let holidays = match w.holidays {
            HolidayMode::Ignore => None,
            HolidayMode::Exclude => Some("not on holidays".to_string()),
            HolidayMode::Only => Some("on holidays only".to_string()),
        };
        let parts: Vec<String> = [days_text, hours_text, holidays]
            .into_iter()
            .flatten()
            .collect();
        w.text = if parts.is_empty() {
            "always".into()
        } else {
            parts.join(" ")
        };
        ok.then_some(w)
    }

    /// Whether the window is open at local time `t`; `Err` says why not, for `explain`.
    pub(crate) fn check(&self, t: DateTime, cals: &Calendars) -> Result<(), String> {
        let minute =
            u16::try_from(t.hour()).unwrap_or(0) * 60 + u16::try_from(t.minute()).unwrap_or(0);
        let today = t.date();
        let whole_day = [(0u16, 24 * 60u16)];
        let ranges: &[(u16, u16)] = if self.hours.is_empty() {
            &whole_day
        } else {
            &self.hours
        };
        let mut in_hours_day = None;
        for &(start, end) in ranges {
            let day = if start < end {
                (start..end).contains(&minute).then_some(today)
            } else if minute >= start {
                Some(today)
            } else if minute < end {
                // Past midnight: the window belongs to the day it started on.
                today.yesterday().ok()
            } else {
                None
            };
            if let Some(day) = day {
                in_hours_day = Some(day);
                if self.day_ok(day, cals).is_ok() {
                    return Ok(());
                }
            }
        }
        match in_hours_day {
            None => Err(format!(
                "{:02}:{:02} is outside [{}]",
                t.hour(),
                t.minute(),
                self.text
            )),
            Some(day) => self.day_ok(day, cals),
        }
    }

    fn day_ok(&self, day: Date, cals: &Calendars) -> Result<(), String> {
        let wd = day.weekday();
        if self.weekdays & (1 << wd.to_monday_zero_offset()) == 0 {
            return Err(format!("{} is not in [{}]", weekday_name(day), self.text));
        }
        let cal = self.calendar.as_ref().map_or("de", |c| c.text.as_str());
        let holiday = cals.holiday(cal, day);
        match (self.holidays, holiday) {
            (HolidayMode::Exclude, Some(name)) => Err(format!(
                "{day} is a holiday ({name}, calendar {cal}), [{}]",
                self.text
            )),
            (HolidayMode::Only, None) => Err(format!(
                "{day} is not a holiday in calendar {cal}, [{}]",
                self.text
            )),
            _ => Ok(()),
        }
    }
}

/// "Thu 2026-12-24".
pub(crate) fn weekday_name(day: Date) -> String {
    let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let i = usize::try_from(day.weekday().to_monday_zero_offset()).unwrap_or(0);
    format!("{} {day}", names.get(i).copied().unwrap_or("?"))
}

fn parse_weekdays(s: &str) -> Option<u8> {
    let mut mask = 0u8;
    for part in s.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a = parse_weekday(a.trim())?.to_monday_zero_offset();
        let b = parse_weekday(b.trim())?.to_monday_zero_offset();
        let mut d = a;
        // Ranges may wrap around the week ("fri-mon").
        loop {
            mask |= 1 << d;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Some(mask)
}

fn parse_hours(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let Some((a, b)) = part.split_once('-') else {
            return Err(format!("\"{part}\" is not a time range"));
        };
        let start =
            parse_hhmm(a.trim()).ok_or_else(|| format!("\"{}\" is not a time of day", a.trim()))?;
        let end =
            parse_hhmm(b.trim()).ok_or_else(|| format!("\"{}\" is not a time of day", b.trim()))?;
        if start == end {
            return Err(format!("\"{part}\" is empty and can never match"));
        }
        out.push((start % (24 * 60), end));
    }
    Ok(out)
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_accept_english_german_and_wrapping_ranges() {
        assert_eq!(parse_weekdays("mon-fri"), Some(0b001_1111));
        assert_eq!(parse_weekdays("mo-fr"), Some(0b001_1111));
        assert_eq!(parse_weekdays("sat,sun"), Some(0b110_0000));
        assert_eq!(parse_weekdays("fri-mon"), Some(0b111_0001));
        assert_eq!(parse_weekdays("mon-fry"), None);
    }

    #[test]
    fn hours_reject_bad_times_and_empty_ranges() {
        assert_eq!(parse_hours("08:00-16:00"), Ok(vec![(480, 960)]));
        assert_eq!(parse_hours("22:00-06:00"), Ok(vec![(1320, 360)]));
        assert_eq!(parse_hours("00:00-24:00"), Ok(vec![(0, 1440)]));
        assert!(parse_hours("25:00-26:00").is_err());
        assert!(parse_hours("08:00-08:00").is_err());
        assert!(parse_hours("8-16").is_err());
        assert!(parse_hours("08:60-09:00").is_err());
    }
}
