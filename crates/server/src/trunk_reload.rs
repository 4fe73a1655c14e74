//! Reloading `trunks.toml` while calls run: on a change of the file (debounced) and on
//! SIGHUP, as the dialplan is. A file that fails its checks is refused with its
//! `file:line:column` lines in the log and the trunks in force stay; one that passes is in
//! force for the next call, and the core loop moves the carriers' registrations over.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::shared::Shared;
use crate::transport::TransportHandle;
use crate::trunk_service::TrunkSet;

/// Client TLS settings for every carrier of `set` reached over TLS, added to `transport`;
/// an error (a CA file that cannot be read) names the trunk.
pub fn add_tls_destinations(set: &TrunkSet, transport: &TransportHandle) -> anyhow::Result<()> {
    let mut profiles = Vec::new();
    for destination in set.tls_destinations() {
        let profile =
            crate::tls::ClientProfile::new(&destination.host, destination.ca_file.as_deref())
                .map_err(|err| anyhow::anyhow!("trunk \"{}\": TLS: {err:#}", destination.trunk))?;
        profiles.push((destination.addr, profile));
    }
    // Only once all are good: a refused file changes nothing.
    for (addr, profile) in profiles {
        transport.add_tls_destination(addr, profile);
    }
    Ok(())
}

/// Watches the trunks file and reloads it; every set taken into force goes to the core
/// loop through `changed`.
pub fn spawn(
    shared: Arc<Shared>,
    transport: TransportHandle,
    changed: mpsc::Sender<Arc<TrunkSet>>,
) -> anyhow::Result<()> {
    let Some(path) = shared.trunks.path().map(Path::to_path_buf) else {
        return Ok(());
    };
    // The file's directory is watched: editors replace the file (see file_watch).
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_os_string());
    let mut changes = crate::file_watch::FileChanges::watch(&dir, false, move |p| {
        p.file_name().map(|n| n.to_os_string()) == name
    })?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let trigger = tokio::select! {
                Some(()) = changes.next() => "file change",
                Some(_) = hangup.recv() => "SIGHUP",
                else => return,
            };
            let check = |set: &TrunkSet| add_tls_destinations(set, &transport);
            match shared.trunks.reload(check).await {
                Ok(set) => {
                    tracing::info!(trigger, trunks = shared.trunks.len(), file = %path.display(), "trunks file reloaded: in force for new calls; running calls go on");
                    if changed.send(set).await.is_err() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::error!(trigger, file = %path.display(), "trunks file refused; the trunks in force stay:\n{err:#}");
                }
            }
        }
    });
    Ok(())
}
