#!/usr/bin/env bash
# Regenerates the spoken prompts in sounds/<lang>/<name>.wav (16 kHz, mono, 16-bit PCM) from the
# texts below with espeak-ng, so a prompt change is a reviewed text change, not a binary blob.
# Needs: apt-get install -y espeak-ng sox
# Usage: make-prompts.sh [NAME...]   (no names: all of them)
set -euo pipefail
cd "$(dirname "$0")"

declare -A de=(
  [welcome]="Willkommen bei amtsleitung."
  [goodbye]="Auf Wiederhören."
  [enter-room]="Bitte geben Sie die Raumnummer ein, gefolgt von der Raute."
  [enter-pin]="Bitte geben Sie die PIN ein, gefolgt von der Raute."
  [wrong-pin]="Die PIN ist falsch."
  [unknown-room]="Diesen Raum gibt es nicht."
  [room-full]="Der Raum ist voll."
  [room-locked]="Der Raum ist gesperrt."
  [first-participant]="Sie sind der erste Teilnehmer."
  [participants-count]="Teilnehmer sind im Raum."
  [wait-moderator]="Bitte warten Sie auf die Moderation."
  [recording-started]="Die Aufzeichnung hat begonnen."
  [recording-stopped]="Die Aufzeichnung ist beendet."
  [muted]="Ihr Mikrofon ist stumm geschaltet."
  [unmuted]="Ihr Mikrofon ist eingeschaltet."
  [after-hours]="Sie rufen außerhalb unserer Öffnungszeiten an."
  [service-unavailable]="Der Dienst ist gerade nicht verfügbar. Bitte versuchen Sie es später noch einmal."
  [recording-failed]="Die Aufzeichnung konnte nicht gestartet werden."
  [number-barred]="Diese Rufnummer dürfen Sie von diesem Anschluss aus nicht anrufen."
  [meeting-connected]="Die Videokonferenz ist verbunden."
  [meeting-disconnected]="Die Verbindung zur Videokonferenz ist unterbrochen."
  [forwarding-on]="Die Rufumleitung ist eingeschaltet."
  [forwarding-off]="Die Rufumleitung ist ausgeschaltet."
  [dnd-on]="Bitte nicht stören ist eingeschaltet."
  [dnd-off]="Bitte nicht stören ist ausgeschaltet."
  [forwarding-loop]="Die Rufumleitung führt im Kreis. Der Anruf kann nicht zugestellt werden."
  [feature-refused]="Diese Funktion steht nur angemeldeten Telefonen zur Verfügung."
  [group-logged-in]="Sie sind in Ihren Gruppen angemeldet."
  [group-logged-out]="Sie sind von Ihren Gruppen abgemeldet."
  [group-not-member]="Sie gehören zu keiner Gruppe."
  [nothing-to-pick-up]="Hier klingelt gerade kein Anruf, den Sie heranholen können."
  [voicemail-greeting]="Die gewünschte Person ist nicht erreichbar. Bitte sprechen Sie nach dem Signalton."
  [voicemail-saved]="Ihre Nachricht wurde gespeichert."
  [voicemail-you-have]="Sie haben"
  [voicemail-new-messages]="neue Nachrichten."
  [voicemail-no-more]="Keine weiteren Nachrichten."
  [voicemail-message-menu]="Eins: noch einmal hören. Sieben: löschen. Neun: behalten."
  [voicemail-deleted]="Die Nachricht wurde gelöscht."
  [voicemail-no-pin]="Für dieses Postfach ist keine PIN gesetzt. Bitte wenden Sie sich an die Verwaltung."
  [voicemail-no-mailbox]="Dieser Anschluss hat kein Postfach."
)
declare -A en=(
  [welcome]="Welcome to amtsleitung."
  [goodbye]="Goodbye."
  [enter-room]="Please enter the room number, followed by the hash key."
  [enter-pin]="Please enter the PIN, followed by the hash key."
  [wrong-pin]="That PIN is not correct."
  [unknown-room]="This room does not exist."
  [room-full]="The room is full."
  [room-locked]="The room is locked."
  [first-participant]="You are the first participant."
  [participants-count]="participants are in the room."
  [wait-moderator]="Please wait for the moderator."
  [recording-started]="Recording has started."
  [recording-stopped]="Recording has stopped."
  [muted]="You are muted."
  [unmuted]="You are unmuted."
  [after-hours]="You are calling outside our opening hours."
  [service-unavailable]="The service is not available right now. Please try again later."
  [recording-failed]="Recording could not be started."
  [number-barred]="You may not call this number from this line."
  [meeting-connected]="The video meeting is connected."
  [meeting-disconnected]="The connection to the video meeting was lost."
  [forwarding-on]="Call forwarding is on."
  [forwarding-off]="Call forwarding is off."
  [dnd-on]="Do not disturb is on."
  [dnd-off]="Do not disturb is off."
  [forwarding-loop]="Call forwarding goes round in a circle. The call cannot be delivered."
  [feature-refused]="This feature is only available to registered phones."
  [group-logged-in]="You are logged in to your groups."
  [group-logged-out]="You are logged out of your groups."
  [group-not-member]="You are not a member of any group."
  [nothing-to-pick-up]="No call is ringing here for you to pick up."
  [voicemail-greeting]="The person you called is not available. Please speak after the tone."
  [voicemail-saved]="Your message has been saved."
  [voicemail-you-have]="You have"
  [voicemail-new-messages]="new messages."
  [voicemail-no-more]="No more messages."
  [voicemail-message-menu]="One: hear it again. Seven: delete. Nine: keep."
  [voicemail-deleted]="The message was deleted."
  [voicemail-no-pin]="This mailbox has no PIN set. Please ask your administrator."
  [voicemail-no-mailbox]="This line has no mailbox."
)

speak() { # lang voice name text
  mkdir -p "$1"
  espeak-ng -v "$2" -s 150 -w "$1/$3.raw.wav" "$4"
  sox "$1/$3.raw.wav" -r 16000 -c 1 -b 16 "$1/$3.wav" norm -3
  rm -f "$1/$3.raw.wav"
}
if [ $# -gt 0 ]; then
  for name in "$@"; do
    speak de de "$name" "${de[$name]}"
    speak en en "$name" "${en[$name]}"
  done
  exit 0
fi
for name in "${!de[@]}"; do speak de de "$name" "${de[$name]}"; done
for name in "${!en[@]}"; do speak en en "$name" "${en[$name]}"; done
# Digits for counts and read-backs.
for d in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  speak de de "digit-$d" "$d"
  speak en en "digit-$d" "$d"
done
