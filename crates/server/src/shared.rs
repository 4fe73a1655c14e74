//! Server-wide state the tasks share: configuration, prompts and handles to the media
//! workers, the dialplan, the store, the live rooms and the WebRTC sessions.

use crate::config::Config;
use crate::dialplan_files::PlanHolder;
use crate::media_worker::MediaWorkers;
use crate::sounds::SoundLibrary;

/// State shared by call control, its effects and the admin API.
pub struct Shared {
    /// Configuration in force.
    pub config: Config,
    /// Prompts.
    pub sounds: SoundLibrary,
    /// Media worker pool.
    pub media: MediaWorkers,
    /// The default domain's dialplan in force.
    pub plan: PlanHolder,
    /// Each tenant's dialplan in force, by domain.
    pub tenant_plans: std::collections::HashMap<String, PlanHolder>,
    /// The store (call records, rooms, recordings, dialplan history, users), behind its
    /// thread.
    pub store: crate::store_handle::StoreHandle,
    /// Live conference rooms.
    pub conferences: crate::conference::Registry,
    /// SIP trunks (none without a `trunks` file), swapped on reload.
    pub trunks: crate::trunk_service::TrunkHolder,
    /// What calls out cost in the last hour (the `[cost-guard]` of the trunks file).
    pub costs: crate::call_cost::CallCosts,
    /// WebRTC clients' sessions (WHIP, WHEP).
    pub webrtc: crate::webrtc_sessions::WebRtcSessions,
    /// Rooms' links to external meetings that are running.
    pub links: crate::meeting_link::MeetingLinks,
    /// The users as the registrar and call routing read them; a change this process makes
    /// (the web console) reloads it in the same store job, since the store's change counter
    /// only sees other processes' writes.
    pub users: std::sync::Arc<crate::user_directory::UserDirectory>,
    /// Mailboxes whose counts changed, for the signalling task to tell their phones (MWI).
    pub mwi: tokio::sync::mpsc::Sender<crate::voicemail::MwiUpdate>,
    /// Set by `amtsleitung node drain`: no new calls, health checks answered 503, and the
    /// process exits once its last call and room have ended.
    pub draining: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// The dialplan of `domain`: its tenant's, else the default domain's.
    pub fn plan_of(&self, domain: &str) -> &PlanHolder {
        self.tenant_plans.get(domain).unwrap_or(&self.plan)
    }
}
