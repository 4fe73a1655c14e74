//! Fuzzes the SIP parser, the 400 builder, the printer and the TCP framer: none may panic,
//! and whatever `parse` accepts must print into something `parse` accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::message::{
    StreamFramer, bad_request_response, call_id, cseq, from_tag, parse, serialize, to_tag,
    top_via,
};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(msg) => {
            let _ = (call_id(&msg), cseq(&msg), top_via(&msg), from_tag(&msg), to_tag(&msg));
            let printed = serialize(&msg);
            assert!(parse(&printed).is_ok(), "printed message does not parse");
        }
        Err(e) => {
            let _ = bad_request_response(data, &e);
        }
    }
    let mut framer = StreamFramer::new();
    for chunk in data.chunks(97) {
        framer.push(chunk);
        while let Ok(Some(frame)) = framer.next_message() {
            let _ = parse(&frame);
        }
    }
});
