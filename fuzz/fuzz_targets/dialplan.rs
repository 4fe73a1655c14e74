//! Fuzzes dialplan compilation and routing: arbitrary files may be refused with diagnostics,
//! never panic, and a plan that compiles must route and explain any number.
#![no_main]

use dialplan::{CallFacts, CheckContext, SourceFile, compile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let files = [SourceFile {
        path: "fuzz.toml".into(),
        text: text.into(),
    }];
    if let Ok(compiled) = compile(&files, &CheckContext::default()) {
        for to in ["600", "81234", "0711123", ""] {
            let facts = CallFacts {
                to: to.into(),
                from: Some("0711".into()),
                trunk: None,
                source_ip: None,
                at: jiff::Timestamp::UNIX_EPOCH,
            };
            let _ = compiled.plan.route(&facts);
            let _ = compiled.plan.explain(&facts).to_string();
        }
    }
});
