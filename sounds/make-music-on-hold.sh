#!/usr/bin/env bash
# Makes sounds/music-on-hold.wav (16 kHz, mono, 16-bit PCM), the music a held party hears:
# a simple melody of sine notes, synthesised here with sox, so it is ours and royalty-free.
# The notes keep clear (more than 25 Hz) of the test tones 440, 660, 880 and 1000 Hz, so
# the end-to-end tests can tell the music from a party's own tone.
# Needs: apt-get install -y sox
# Usage: make-music-on-hold.sh
set -euo pipefail
cd "$(dirname "$0")"

notes=(523.25 587.33 698.46 783.99 698.46 587.33 523.25 392.00)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
parts=()
for i in "${!notes[@]}"; do
  # 0.4 s per note, soft attack and release so the notes do not click.
  sox -n -r 16000 -c 1 -b 16 "$work/$i.wav" synth 0.4 sine "${notes[$i]}" vol 0.25 fade q 0.02 0.4 0.12
  parts+=("$work/$i.wav")
done
sox "${parts[@]}" music-on-hold.wav
