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
    use notify::Watcher;
    let Some(path) = shared.trunks.path().map(Path::to_path_buf) else {
        return Ok(());
    };
    // Editors replace the file rather than write it: watch its directory, keep its events.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_os_string());
    let (file_tx, mut file_rx) = mpsc::channel::<()>(16);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
            && event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        {
            let _ = file_tx.try_send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            let trigger = tokio::select! {
                Some(()) = file_rx.recv() => {
                    // Let an editor finish writing (several events per save) before reading.
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    while file_rx.try_recv().is_ok() {}
                    "file change"
                }
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
