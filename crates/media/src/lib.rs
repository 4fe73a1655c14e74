//! Media for amtsleitung: RTP/RTCP packets, SDP offer/answer, codecs (G.711, G.722, Opus via
//! libopus), an adaptive jitter buffer with loss concealment, RFC 4733 DTMF, WAV prompts and
//! tones, one call leg's media put together ([`leg::MediaLeg`]), and where T.38 fax datagrams
//! between two legs go ([`udptl::UdptlRelay`]).
//!
//! No sockets, threads or clocks: packets and time come in as arguments. The hot paths
//! (packet parse/build, decode/encode, jitter buffer) allocate nothing per packet.

pub mod codec;
pub mod dtmf;
pub mod dtx;
pub mod g711;
pub mod g722;
pub mod jitter;
pub mod leg;
pub mod opus;
pub mod plc;
pub mod receiver;
pub mod relay;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod secure;
pub mod tone;
pub mod udptl;
pub mod wav;
