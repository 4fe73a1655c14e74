//! A user's own location number for emergency calls (`user location`, `user add
//! --location`, the CSV's `location` columns) and what `user show` says an emergency call of
//! the user presents.
//!
//! Emergency services locate a caller by the number presented to them. A phone at home over
//! the VPN would otherwise present the town hall's number and send help to the wrong address;
//! the user's own number is the most exact answer, a `[[emergency-location]]` network's the
//! next, the emergency trunk's `location-number` the last (see
//! [`trunks::TrunkConfig::emergency_location`], which the server uses too).

use std::net::IpAddr;
use std::path::Path;

use store::{AllowedNetwork, Binding, UserLocation};
use trunks::E164;

use crate::trunk_service::read_trunks_file;
use crate::user_directory::personal_location;

/// A location number as an admin writes it (`+49 7031 4711-0`, international form only:
/// the store has no area code to complete a national one) with the networks it is for.
pub fn parse(number: &str, networks: Vec<AllowedNetwork>) -> Result<UserLocation, String> {
    let number = number.trim();
    let e164 = number.parse::<E164>().map_err(|err| {
        format!("location number {number:?}: {err} (write it as +49 7031 4711-0)")
    })?;
    Ok(UserLocation {
        number: e164.to_string(),
        networks,
    })
}

/// The user's own setting as `user show` and `user location` print it.
pub fn describe(location: Option<&UserLocation>) -> String {
    match location {
        None => "none (the trunks file's location numbers apply)".to_owned(),
        Some(UserLocation { number, networks }) if networks.is_empty() => {
            format!("{number} (emergency calls from all of the user's phones)")
        }
        Some(UserLocation { number, networks }) => {
            let networks: Vec<String> = networks.iter().map(ToString::to_string).collect();
            format!(
                "{number} (emergency calls from phones in {})",
                networks.join(", ")
            )
        }
    }
}

/// The lines of `user show --trunks FILE`: what an emergency call from each registered phone
/// of the user, and from a phone anywhere else, presents, and which setting that comes from.
pub fn presented_lines(
    trunks_file: &Path,
    location: Option<&UserLocation>,
    bindings: &[Binding],
) -> Result<String, String> {
    let config = read_trunks_file(trunks_file)
        .map_err(|err| format!("{err:#}"))?
        .config;
    let Some(trunk) = config.emergency_trunk() else {
        return Ok("emergency calls: no trunk in the trunks file carries them\n".to_owned());
    };
    // A stored number this build cannot read is not presented by the server either.
    let own = match location.map(personal_location).transpose() {
        Ok(own) => own,
        Err(err) => {
            return Ok(format!(
                "emergency calls: the user's stored location number is unusable ({err}); the server presents the trunks file's\n"
            ));
        }
    };
    let line = |source: Option<IpAddr>| match config.emergency_location(trunk, own.as_ref(), source)
    {
        Some((number, origin)) => format!(
            "{} ({origin}), on trunk {}",
            trunk.numbers.format(number),
            trunk.name
        ),
        None => format!(
            "no location number (the emergency trunk {} has no location-number); the carrier sees the caller's own number",
            trunk.name
        ),
    };
    let mut out = String::from("emergency calls present:\n");
    for binding in bindings {
        out.push_str(&format!(
            "  from the phone at {}: {}\n",
            binding.source.ip(),
            line(Some(binding.source.ip()))
        ));
    }
    let elsewhere = if bindings.is_empty() {
        "  from a phone of the user (none registered now)"
    } else {
        "  from a phone anywhere else"
    };
    // Elsewhere: not covered by the user's networks nor by any [[emergency-location]].
    let elsewhere_source = own
        .as_ref()
        .is_none_or(|own| !own.networks.is_empty())
        .then_some(None)
        .flatten();
    out.push_str(&format!("{elsewhere}: {}\n", line(elsewhere_source)));
    Ok(out)
}
