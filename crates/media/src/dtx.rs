//! Discontinuous transmission towards a peer that asked for it: which silent frames go out.
//! Sans-IO, a counter and a flag; the caller leaves out the frames it is told to and lets its
//! RTP timestamp run on.

/// While a peer that asked for discontinuous transmission hears nothing, it still gets one
/// packet this often, as libopus's own DTX sends one (RFC 7587 §3.1.3): its NAT binding and
/// media timeout stay alive, and so does our SSRC in its jitter buffer.
pub const DTX_KEEPALIVE_MS: u32 = 400;

/// Leaves out silent frames towards a peer that prefers discontinuous transmission
/// (RFC 7587 §6.1 `usedtx=1`), as RFC 3551 §4.1 silence suppression: the first silent frame
/// goes out (the peer's decoder settles on silence), then one every [`DTX_KEEPALIVE_MS`];
/// the RTP timestamp runs on and the sequence number does not, so the peer sees a pause,
/// not loss. The first packet after a pause carries the marker bit.
#[derive(Debug)]
pub struct DtxSender {
    /// Frames into the current silence, modulo `keepalive_frames`; 0 sends.
    phase: u32,
    keepalive_frames: u32,
    /// A frame was left out since the last packet.
    paused: bool,
}

impl DtxSender {
    /// For frames of `ptime_ms`.
    pub fn new(ptime_ms: u32) -> Self {
        Self {
            phase: 0,
            keepalive_frames: (DTX_KEEPALIVE_MS / ptime_ms.max(1)).max(1),
            paused: false,
        }
    }

    /// Whether this silent frame goes out.
    pub fn silent_frame(&mut self) -> bool {
        let send = self.phase == 0;
        self.phase = (self.phase + 1) % self.keepalive_frames;
        self.paused |= !send;
        send
    }

    /// A frame with sound: the next silence starts with a packet again.
    pub fn sound_frame(&mut self) {
        self.phase = 0;
    }

    /// The marker bit for the packet going out now (the first after a pause).
    pub fn take_marker(&mut self) -> bool {
        std::mem::take(&mut self.paused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_the_first_silent_frame_then_one_per_400_ms_and_marks_what_follows_a_pause() {
        let mut dtx = DtxSender::new(20);
        let mut sent = Vec::new();
        let mut marked = Vec::new();
        for frame in 0..45 {
            if dtx.silent_frame() {
                sent.push(frame);
                marked.push(dtx.take_marker());
            }
        }
        assert_eq!(sent, [0, 20, 40]);
        assert_eq!(marked, [false, true, true]);
        // Sound resumes: marked once (frames were left out), then not.
        dtx.silent_frame();
        dtx.sound_frame();
        assert!(dtx.take_marker());
        dtx.sound_frame();
        assert!(!dtx.take_marker());
        // The next silence starts with a packet again.
        assert!(dtx.silent_frame());
        assert!(!dtx.silent_frame());
    }

    #[test]
    fn long_frames_still_keep_a_packet_at_least_every_frame_or_400_ms() {
        let mut dtx = DtxSender::new(60);
        let sent = (0..14).filter(|_| dtx.silent_frame()).count();
        assert_eq!(sent, 3, "frames 0, 6 and 12 of 60 ms");
        let mut every = DtxSender::new(500);
        assert!(
            (0..3).all(|_| every.silent_frame()),
            "a frame longer than 400 ms always goes out"
        );
    }
}
