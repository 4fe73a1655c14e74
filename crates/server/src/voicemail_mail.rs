//! Mails a new voicemail message to its mailbox's address through the configured SMTP relay
//! (`[voicemail] smtp`), the WAV attached. Runs as its own task, off every call's path; a
//! failure is logged and counted (`/metrics`), never dropped silently.
//!
//! `lettre` does the SMTP dialogue and the MIME building (multipart/mixed, base64 for the
//! WAV, encoded headers): a hand-written client would have to get dot-stuffing, line lengths,
//! reply codes and STARTTLS right again. Only its builder and async SMTP transport are used,
//! TLS through the rustls (ring) the server already has.

use std::sync::Arc;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use store::NewVoicemail;

use crate::config::VoicemailSettings;
use crate::shared::Shared;
use crate::telemetry;

/// Why a message was not mailed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `smtp` is not `host:port`.
    #[error("[voicemail] smtp {0:?} is not host:port")]
    Relay(String),
    /// An address is not one a mail can carry.
    #[error("address {0:?}: {1}")]
    Address(String, lettre::address::AddressError),
    /// The WAV could not be read.
    #[error("message file {0}: {1}")]
    File(String, std::io::Error),
    /// A MIME type the mail names could not be written.
    #[error("content type {0}")]
    ContentType(&'static str),
    /// The mail could not be built.
    #[error("mail not built: {0}")]
    Build(#[from] lettre::error::Error),
    /// The relay refused it or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// Mails `message` when the relay is configured and its mailbox has an address.
pub async fn send_if_wanted(shared: &Arc<Shared>, message: NewVoicemail) {
    let settings = &shared.config.voicemail;
    if settings.smtp.is_none() {
        return;
    }
    let mailbox = message.mailbox.clone();
    let email = match shared
        .store
        .run(move |store| store.voicemail_settings(&mailbox))
        .await
    {
        Ok(Ok(settings)) => settings.email,
        Ok(Err(err)) => {
            telemetry::count(telemetry::VOICEMAIL_EMAIL_FAILURES_TOTAL);
            tracing::error!(mailbox = %message.mailbox, "voicemail not mailed: {err}");
            return;
        }
        Err(err) => {
            telemetry::count(telemetry::VOICEMAIL_EMAIL_FAILURES_TOTAL);
            tracing::error!(mailbox = %message.mailbox, "voicemail not mailed: {err}");
            return;
        }
    };
    let Some(to) = email else {
        return;
    };
    match send(settings, &to, &message).await {
        Ok(()) => {
            telemetry::count(telemetry::VOICEMAIL_EMAILS_TOTAL);
            tracing::info!(mailbox = %message.mailbox, %to, "voicemail mailed");
        }
        Err(err) => {
            telemetry::count(telemetry::VOICEMAIL_EMAIL_FAILURES_TOTAL);
            tracing::error!(mailbox = %message.mailbox, %to, "voicemail not mailed: {err}");
        }
    }
}

/// The mail's text, German first (the staff's language), then English.
pub fn mail_text(message: &NewVoicemail, at: &str) -> (String, String) {
    let seconds = message.duration_ms / 1000;
    let subject = format!(
        "Neue Sprachnachricht von {caller} / New voice message from {caller}",
        caller = message.caller
    );
    let body = format!(
        "Sie haben eine neue Sprachnachricht in Ihrem Postfach {mailbox}.\r\n\
         Anrufer: {caller}\r\nZeit: {at}\r\nLänge: {seconds} s\r\n\
         Die Nachricht ist angehängt.\r\n\r\n\
         You have a new voice message in your mailbox {mailbox}.\r\n\
         Caller: {caller}\r\nTime: {at}\r\nLength: {seconds} s\r\n\
         The message is attached.\r\n",
        mailbox = message.mailbox,
        caller = message.caller,
    );
    (subject, body)
}

async fn send(
    settings: &VoicemailSettings,
    to: &str,
    message: &NewVoicemail,
) -> Result<(), MailError> {
    let relay = settings.smtp.clone().unwrap_or_default();
    let (host, port) = relay
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
        .ok_or_else(|| MailError::Relay(relay.clone()))?;
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|err| MailError::Address(settings.from.clone(), err))?;
    let to_box: Mailbox = to
        .parse()
        .map_err(|err| MailError::Address(to.to_string(), err))?;
    let path = message.path.clone();
    let wav = tokio::fs::read(&path)
        .await
        .map_err(|err| MailError::File(path.display().to_string(), err))?;
    let at = jiff::Timestamp::from_millisecond(message.received_at_ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_default();
    let (subject, text) = mail_text(message, &at);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "voicemail.wav".into());
    let wav_type =
        ContentType::parse("audio/wav").map_err(|_| MailError::ContentType("audio/wav"))?;
    let mail = Message::builder()
        .from(from)
        .to(to_box)
        .subject(subject)
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(text))
                .singlepart(Attachment::new(file_name).body(wav, wav_type)),
        )?;
    let mut transport = if settings.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)?
    } else {
        // Plain SMTP is for a relay on the same host or network (the usual town-hall
        // set-up); credentials are only sent with STARTTLS.
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
    }
    .port(port);
    if settings.starttls
        && let (Some(user), Some(password)) = (&settings.smtp_user, &settings.smtp_password)
    {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    transport.build().send(mail).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_names_caller_time_and_length_in_both_languages() {
        let message = NewVoicemail {
            mailbox: "101".into(),
            caller: "07111234".into(),
            received_at_ms: 0,
            duration_ms: 7_400,
            path: "/data/voicemail/101/x.wav".into(),
        };
        let (subject, body) = mail_text(&message, "2026-12-06 16:00:00 CET");
        assert!(
            subject.contains("Sprachnachricht von 07111234"),
            "{subject}"
        );
        assert!(subject.contains("voice message from 07111234"), "{subject}");
        for needle in [
            "Postfach 101",
            "Anrufer: 07111234",
            "Zeit: 2026-12-06 16:00:00 CET",
            "Länge: 7 s",
            "Caller: 07111234",
            "Length: 7 s",
        ] {
            assert!(body.contains(needle), "{needle} in {body}");
        }
    }
}
