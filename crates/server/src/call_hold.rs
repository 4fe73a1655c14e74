//! Hold on a connected call (RFC 3264 §8.4, RFC 6337 §5.3): which media each leg gets when
//! one side, or both, put the call on hold with `a=sendonly` / `a=inactive`.
//!
//! The held party hears music on hold from the server (the holder's own phone may send its
//! own music or nothing at all; as a B2BUA we do not rely on it), the holder hears nothing
//! (we may not send to it), and once nobody holds the legs are connected again. Pure: call
//! control carries the result out on the media workers.

/// What the two legs of a connected call do while hold stands as it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldMedia {
    /// Nobody holds: the legs are connected (relayed or transcoded) as before.
    Connected,
    /// Somebody holds: the legs are apart, each making its own media.
    Apart {
        /// The leg whose offer changed hears music (the other side holds).
        leg_music: bool,
        /// The other leg hears music (the leg holds).
        other_music: bool,
    },
}

/// The media for a call where `leg_holds` and `other_holds` say who holds it now.
pub fn hold_media(leg_holds: bool, other_holds: bool) -> HoldMedia {
    if !leg_holds && !other_holds {
        return HoldMedia::Connected;
    }
    // A party that holds is not sent anything (it offered sendonly or inactive), so music
    // for it would be wasted; the one held by the other hears music.
    HoldMedia::Apart {
        leg_music: other_holds && !leg_holds,
        other_music: leg_holds && !other_holds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_party_hears_music_and_the_holder_nothing() {
        assert_eq!(
            hold_media(true, false),
            HoldMedia::Apart {
                leg_music: false,
                other_music: true
            }
        );
        assert_eq!(
            hold_media(false, true),
            HoldMedia::Apart {
                leg_music: true,
                other_music: false
            }
        );
    }

    #[test]
    fn a_resume_reconnects_only_when_nobody_holds_any_more() {
        assert_eq!(hold_media(false, false), HoldMedia::Connected);
        // Both held, one resumes: it now hears the other's hold music, still apart.
        assert_eq!(
            hold_media(false, true),
            HoldMedia::Apart {
                leg_music: true,
                other_music: false
            }
        );
        assert_eq!(
            hold_media(true, true),
            HoldMedia::Apart {
                leg_music: false,
                other_music: false
            }
        );
    }
}
