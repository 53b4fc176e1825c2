#!/usr/bin/env bash
# Makes ffarm's test media with FFmpeg's own command-line tools.
#
#   assets/make-fixtures.sh [DIR]          test fixtures (default DIR: target/fixtures)
#   assets/make-fixtures.sh --bench [DIR]  the larger benchmark inputs (default DIR: target/bench-media)
#
# Nothing made here is committed. The output is cached: a stamp holding this script's hash
# marks a complete set, so a second run returns at once; a changed script remakes everything.
# Concurrent callers (parallel test processes) serialise on a lock file.
set -euo pipefail

mode=test
if [ "${1:-}" = "--bench" ]; then
  mode=bench
  shift
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if [ "$mode" = bench ]; then
  out=${1:-$root/target/bench-media}
else
  out=${1:-$root/target/fixtures}
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

command -v ffmpeg >/dev/null || {
  echo "make-fixtures: ffmpeg is not installed (run ./dev.sh setup)" >&2
  exit 1
}

stamp="$out/.stamp"
want="$mode $(sha256sum "$0" | cut -d' ' -f1)"

exec 9>"$out/.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
rm -f "$stamp"

# SVT-AV1 prints its banner unless told to log errors only.
export SVT_LOG=1
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
# Deterministic sources: a moving test card and tones.
video() { echo "testsrc2=size=$1:rate=$2:duration=$3"; }
tone() { echo "sine=frequency=$1:sample_rate=${3:-48000}:duration=$2"; }
broadband() {
  echo "$(tone 440 "$1")[a];$(tone 660 "$1")[b];anoisesrc=color=pink:amplitude=0.05:sample_rate=48000:duration=$1[c];[a][b][c]amix=inputs=3"
}
x264=(-c:v libx264 -preset ultrafast -crf 28)
aac=(-c:a aac -b:a 96k)

if [ "$mode" = bench ]; then
  # 1080p30, 10 seconds, H.264 High + stereo AAC: the input every engine benchmark uses.
  ff -f lavfi -i "$(video 1920x1080 30 10)" -f lavfi -i "$(tone 440 10)" \
    -c:v libx264 -preset medium -crf 20 -pix_fmt yuv420p -ac 2 "${aac[@]}" \
    -movflags +faststart "$out/bench_1080p.mp4"
  # 1080p30, four minutes, 2-second GOPs + stereo AAC: the input the split-job benchmark
  # cuts into parts. Its audio is broadband (two tones and pink noise), as a recording's is:
  # FFmpeg's AAC encoder takes about five times as long over an AAC-coded pure tone (13.6 s
  # against 2.5 s of CPU for these four minutes), which would make the audio look far
  # dearer against the video than it is in real inputs.
  ff -f lavfi -i "$(video 1920x1080 30 240)" -f lavfi -i "$(broadband 240)" \
    -c:v libx264 -preset veryfast -crf 23 -g 60 -pix_fmt yuv420p -ac 2 "${aac[@]}" \
    -movflags +faststart "$out/split_1080p_4min.mp4"
  # One-second 640x360 clips: the per-job overhead benchmark.
  ff -f lavfi -i "$(video 640x360 30 1)" -f lavfi -i "$(tone 440 1)" \
    "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$out/clip_1s.mp4"
  echo "$want" >"$stamp"
  exit 0
fi

v="$out/valid"
m="$out/malformed"
limits="$out/limits"
# A remade set starts empty: a file an earlier version of this script made and this one no
# longer does would otherwise linger and be picked up by tests that read a whole folder.
rm -rf "$v" "$m" "$limits"
mkdir -p "$v" "$m" "$limits"

# --- valid inputs: varied codecs, containers and shapes --------------------------------
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" -movflags +faststart "$v/h264_aac.mp4"
ff -f lavfi -i "$(video 1920x1080 25 2)" -f lavfi -i "$(tone 440 2)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$v/h264_aac_1080p.mp4"
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 330 2)" \
  -c:v libx265 -preset ultrafast -x265-params log-level=error -ac 2 "${aac[@]}" "$v/hevc_aac.mkv"
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 550 2)" \
  -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 500k -ac 2 -c:a libopus -b:a 64k "$v/vp9_opus.webm"
ff -f lavfi -i "$(video 320x180 30 2)" -f lavfi -i "$(tone 550 2)" \
  -c:v libsvtav1 -preset 12 -crf 45 -ac 2 -c:a libopus -b:a 64k "$v/av1_opus.mkv"
# Interlaced PAL, top field first, MPEG-2 with MP2 audio in a transport stream.
ff -f lavfi -i "$(video 720x576 50 2)" -f lavfi -i "$(tone 440 2)" \
  -vf "interlace=scan=tff" -c:v mpeg2video -b:v 4M -flags +ilme+ildct -top 1 \
  -ac 2 -c:a mp2 -b:a 192k -f mpegts "$v/mpeg2_interlaced.ts"
# Rotated: the display matrix says "turn 90°" (a phone held upright).
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$out/.rot_src.mp4"
ff -i "$out/.rot_src.mp4" -c copy -metadata:s:v rotate=90 "$v/rotated90.mp4"
rm -f "$out/.rot_src.mp4"
# Variable frame rate: every third frame only during the first second.
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2)" \
  -vf "select='if(lt(t,1),not(mod(n,3)),1)'" -fps_mode vfr \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$v/vfr.mp4"
# Variable frame rate on a fast base: timestamps on a 120 fps grid (r_frame_rate 120) but
# three frames in eight kept, 45 fps on average.
ff -f lavfi -i "$(video 640x360 120 3)" -f lavfi -i "$(tone 440 3)" \
  -vf "select='eq(mod(n,8),0)+eq(mod(n,8),3)+eq(mod(n,8),5)'" -fps_mode vfr \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$v/vfr_base120.mp4"
# 60 fps: above the shipped presets' 30 fps caps, at the 60 fps ones.
ff -f lavfi -i "$(video 960x540 60 2)" -f lavfi -i "$(tone 440 2)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" -movflags +faststart "$v/h264_60fps.mp4"
# A transport stream that changes mid-way, as concatenated or broadcast captures do: 320x240
# with stereo 48 kHz audio, then 640x360 with mono 44.1 kHz.
ff -f lavfi -i "$(video 320x240 25 2)" -f lavfi -i "$(tone 440 2)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" -f mpegts "$out/.part1.ts"
ff -f lavfi -i "$(video 640x360 25 2)" -f lavfi -i "$(tone 660 2 44100)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 1 "${aac[@]}" -f mpegts "$out/.part2.ts"
printf "file '%s'\nfile '%s'\n" "$out/.part1.ts" "$out/.part2.ts" >"$out/.parts.txt"
ff -f concat -safe 0 -i "$out/.parts.txt" -c copy -f mpegts "$v/format_change.ts"
rm -f "$out/.part1.ts" "$out/.part2.ts" "$out/.parts.txt"
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2)" \
  "${x264[@]}" -pix_fmt yuv420p10le -ac 2 "${aac[@]}" "$v/h264_10bit.mkv"
ff -f lavfi -i "$(video 640x360 30 2)" "${x264[@]}" -pix_fmt yuv420p "$v/video_only.mp4"
ff -f lavfi -i "$(tone 440 2)" -ac 2 "${aac[@]}" "$v/audio_only.m4a"
# MP3 with embedded cover art: the picture is an attached picture, not a video track.
ff -f lavfi -i "color=c=red:size=200x200:duration=1" -frames:v 1 "$out/.cover.jpg"
ff -f lavfi -i "$(tone 440 2 44100)" -i "$out/.cover.jpg" -map 0:a -map 1:v \
  -ac 2 -c:a libmp3lame -b:a 128k -c:v copy -disposition:v attached_pic -id3v2_version 3 \
  "$v/audio_cover.mp3"
rm -f "$out/.cover.jpg"
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2)" \
  -filter_complex "[1:a]pan=5.1|FL=c0|FR=c0|FC=c0|LFE=c0|BL=c0|BR=c0[a]" -map 0:v -map "[a]" \
  "${x264[@]}" -pix_fmt yuv420p "${aac[@]}" "$v/surround51.mkv"
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2)" -f lavfi -i "$(tone 880 2)" \
  -map 0:v -map 1:a -map 2:a "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" \
  -metadata:s:a:0 language=eng -metadata:s:a:1 language=fra "$v/two_audio.mkv"
# Three audio tracks for choosing by language: English (440 Hz), French (880 Hz, the default
# track) and one that names no language (660 Hz, titled).
ff -f lavfi -i "$(video 320x180 30 2)" -f lavfi -i "$(tone 440 2)" -f lavfi -i "$(tone 880 2)" \
  -f lavfi -i "$(tone 660 2)" -map 0:v -map 1:a -map 2:a -map 3:a "${x264[@]}" -pix_fmt yuv420p \
  -ac 2 "${aac[@]}" -metadata:s:a:0 language=eng -metadata:s:a:1 language=fre \
  -metadata:s:a:2 title="Commentary" -disposition:a:0 0 -disposition:a:1 default \
  "$v/three_audio.mkv"
ff -f lavfi -i "$(video 640x360 30 2)" -vf scale=641:361 \
  -c:v libx264 -preset ultrafast -pix_fmt yuv444p "$v/odd_641x361.mkv"
# Anamorphic NTSC: 720x480 storage, 16:9 display.
ff -f lavfi -i "$(video 720x480 30 2)" -f lavfi -i "$(tone 440 2)" -vf setsar=32/27 \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$v/anamorphic.mkv"
ff -f lavfi -i "$(video 640x360 25 2)" -f lavfi -i "$(tone 440 2 44100)" \
  -c:v mpeg4 -q:v 5 -ac 2 -c:a libmp3lame -b:a 128k "$v/mpeg4_mp3.avi"
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2 44100)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$v/h264_aac.flv"
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 -c:a pcm_s16le "$v/h264_pcm.mov"
# 1080p and 13 seconds: enough for several 6-second HLS segments in every rendition.
ff -f lavfi -i "$(video 1920x1080 25 13)" -f lavfi -i "$(tone 440 13)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$v/hls_source_1080p.mp4"
# With a subtitle track (SubRip) for the remux presets.
printf '1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n' >"$out/.subs.srt"
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2)" -i "$out/.subs.srt" \
  -map 0:v -map 1:a -map 2:s "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" -c:s srt \
  -metadata:s:s:0 language=eng "$v/subtitled.mkv"
rm -f "$out/.subs.srt"
# Long enough to stop part-way through.
ff -f lavfi -i "$(video 1280x720 30 40)" -f lavfi -i "$(tone 440 40)" \
  -c:v libx264 -preset ultrafast -crf 32 -pix_fmt yuv420p -ac 2 "${aac[@]}" \
  -movflags +faststart "$v/long_720p.mp4"

# Four minutes with 2-second GOPs, open (leading B-frames reach back across each keyframe):
# the input split jobs cut into parts.
ff -f lavfi -i "$(video 426x240 30 240)" -f lavfi -i "$(tone 440 240)" \
  -c:v libx264 -preset veryfast -crf 30 -g 60 -keyint_min 60 -sc_threshold 0 \
  -x264-params open-gop=1 -pix_fmt yuv420p -ac 2 "${aac[@]}" -movflags +faststart \
  "$v/split_4min.mp4"
# Loudness: broadband audio whose level swings a little (as speech does), far below and far
# above the usual -16 LUFS target: about -32 LUFS with -25 dBTP peaks alone in M4A, and about
# -10 LUFS with -4 dBTP peaks under a small picture in MP4.
ff -f lavfi -i "$(broadband 10),volume='0.5+0.4*sin(2*PI*0.4*t)':eval=frame" \
  -ac 2 "${aac[@]}" "$v/loudness_quiet.m4a"
ff -f lavfi -i "$(video 320x180 25 10)" \
  -f lavfi -i "$(broadband 10),volume='8+2*sin(2*PI*0.3*t)':eval=frame" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 -c:a aac -b:a 128k "$v/loudness_loud.mp4"
# Five quiet seconds, then five 32 dB louder: a clip of the quiet part measures nothing like
# the whole (whose gate keeps only the loud part).
ff -f lavfi -i "$(broadband 10),volume='if(lt(t,5),0.05,2)':eval=frame" \
  -ac 2 "${aac[@]}" "$v/loudness_steps.m4a"

# HDR made from the test card: zscale turns it into BT.2020 10-bit with SDR white at
# 100 cd/m², so a tone map back to SDR can be judged against the card itself. HEVC with
# 1-second GOPs (a split job cuts them into parts).
hdr() { echo "zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t=$1:m=bt2020nc:p=bt2020:r=tv:npl=100,format=yuv420p10le"; }
x265hdr=(-c:v libx265 -preset ultrafast -color_primaries bt2020 -colorspace bt2020nc)
gop="keyint=30:min-keyint=30"
# HDR10: PQ, with the mastering display (P3 in D65, 1000 cd/m²) and light level in SEI.
ff -f lavfi -i "$(video 320x180 30 2)" -f lavfi -i "$(tone 440 2)" -vf "$(hdr smpte2084)" \
  "${x265hdr[@]}" -color_trc smpte2084 -x265-params "log-level=error:$gop:hdr10=1:\
master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400" \
  -tag:v hvc1 -ac 2 "${aac[@]}" -movflags +faststart "$v/hdr10_pq.mp4"
# HLG, said in the stream's headers.
ff -f lavfi -i "$(video 320x180 30 2)" -vf "$(hdr arib-std-b67)" \
  "${x265hdr[@]}" -color_trc arib-std-b67 -x265-params "log-level=error:$gop" "$v/hlg.mkv"
# HLG as broadcasters send it: the headers say BT.2020 SDR (bt2020-10) for older sets and an
# alternative-transfer SEI says HLG, so only the decoded frames tell.
ff -f lavfi -i "$(video 320x180 30 2)" -vf "$(hdr arib-std-b67)" \
  "${x265hdr[@]}" -color_trc arib-std-b67 -x265-params "log-level=error:$gop:transfer=bt2020-10" \
  "$v/hlg_compat.mkv"

# --- malformed inputs ------------------------------------------------------------------
: >"$m/empty.mp4"
printf 'This is a plain text file, not a video.\nIt only carries a video file name.\n' >"$m/text.mp4"
# Fixed pseudo-random bytes (an LCG in awk) so every run makes the same file.
LC_ALL=C awk 'BEGIN { s = 12345; for (i = 0; i < 65536; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%c", int(s / 65536) % 256 } }' >"$m/random.mp4"
# moov at the end, then cut in half: the index never arrives.
ff -f lavfi -i "$(video 640x360 30 2)" -f lavfi -i "$(tone 440 2)" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$out/.moov_end.mp4"
size=$(stat -c %s "$out/.moov_end.mp4")
head -c $((size / 2)) "$out/.moov_end.mp4" >"$m/truncated.mp4"
rm -f "$out/.moov_end.mp4"
# A Matroska file cut off part-way through its clusters.
size=$(stat -c %s "$v/hevc_aac.mkv")
head -c $((size * 3 / 5)) "$v/hevc_aac.mkv" >"$m/truncated_tail.mkv"
# Bit rot: every 97th byte of the media data inverted, headers intact.
cp "$v/h264_aac.mp4" "$m/bitflip.mp4"
size=$(stat -c %s "$m/bitflip.mp4")
LC_ALL=C awk -v size="$size" 'BEGIN { for (p = 4096; p < size - 64; p += 97) print p }' |
  while read -r p; do
    b=$(od -An -tu1 -j "$p" -N1 "$m/bitflip.mp4" | tr -d ' ')
    printf "$(printf '\\%03o' $((255 - b)))" | dd of="$m/bitflip.mp4" bs=1 seek="$p" conv=notrunc status=none
  done
# Timestamps that jump 100,000 s after the first second, in a Matroska file whose declared
# duration (the Segment's Duration element: ID 0x4489, an 8-byte float in milliseconds) is
# patched back to 2 s: a file that lies about its length.
ff -f lavfi -i "$(video 320x240 25 2)" -f lavfi -i "$(tone 440 2)" \
  -vf "setpts='PTS+gte(T,1)*100000/TB'" -af "asetpts='PTS+gte(T,1)*100000/TB'" \
  "${x264[@]}" -pix_fmt yuv420p -ac 2 "${aac[@]}" "$m/timestamp_jump.mkv"
at=$(LC_ALL=C grep -obUaP '\x44\x89\x88' "$m/timestamp_jump.mkv" | head -1 | cut -d: -f1)
printf '\x40\x9f\x40\x00\x00\x00\x00\x00' |
  dd of="$m/timestamp_jump.mkv" bs=1 seek=$((at + 3)) conv=notrunc status=none
# --- inputs that test the sandbox's limits (well-formed, but costly) ------------------
# A memory bomb inside the size limits: 8192x8192 (the most pixels a frame may have) in a
# 200 KB file whose H.264 stream keeps 16 reference frames, so decoding it holds about 1.7 GB
# of pictures: past a sandbox's memory limit of 1 GiB.
ff -f lavfi -i "color=c=gray:size=8192x8192:rate=25:duration=0.56" \
  -c:v libx264 -preset ultrafast -x264-params ref=16:keyint=250 -pix_fmt yuv420p \
  "$limits/memory_bomb.mp4"
# A container holding only subtitles: nothing to transcode.
printf '1\n00:00:00,000 --> 00:00:01,000\nhello\n' >"$out/.sub.srt"
ff -i "$out/.sub.srt" -c:s srt "$m/subtitles_only.mkv"
rm -f "$out/.sub.srt"

# --- images: watermarks -----------------------------------------------------------------
images="$out/images"
rm -rf "$images"
mkdir -p "$images"
# An opaque magenta card (easy to find in a picture) and one with a transparent half.
ff -f lavfi -i "color=c=magenta:size=160x80:duration=1" -frames:v 1 "$images/logo.png"
ff -f lavfi -i "color=c=magenta:size=160x80:duration=1,format=rgba,geq=r='255':g='0':b='255':a='if(lt(X,80),255,0)'" \
  -frames:v 1 "$images/logo_half_clear.png"
ff -f lavfi -i "color=c=magenta:size=160x80:duration=1" -frames:v 1 "$images/logo.jpg"
# Wider than a watermark may be (4096).
ff -f lavfi -i "color=c=gray:size=5000x64:duration=1" -frames:v 1 "$images/too_wide.png"
# Text with an image's name; a short video is not a still image either.
printf 'not a picture\n' >"$images/not_an_image.png"
ff -f lavfi -i "$(video 160x80 10 1)" -c:v libx264 -preset ultrafast "$images/video.mp4"

# --- captions: text subtitles in two formats and languages, caption files ------------------
captions="$out/captions"
rm -rf "$captions"
mkdir -p "$captions"
printf '1\n00:00:00,500 --> 00:00:01,500\nhello\n\n2\n00:00:02,000 --> 00:00:03,000\nworld\n' \
  >"$captions/.eng.srt"
cat >"$captions/.fra.ass" <<'ASS'
[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,DejaVu Sans,28,&H00FFFFFF,&H00FFFFFF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,bonjour
ASS
# 320x240, 4 s: SRT (eng, default) and ASS (fra) beside video and audio.
ff -f lavfi -i "$(video 320x240 25 4)" -f lavfi -i "$(tone 440 4)" -i "$captions/.eng.srt" \
  -i "$captions/.fra.ass" -map 0:v -map 1:a -map 2:s -map 3:s "${x264[@]}" -pix_fmt yuv420p \
  -ac 2 "${aac[@]}" -c:s:0 srt -c:s:1 ass -metadata:s:s:0 language=eng \
  -metadata:s:s:1 language=fra -metadata:s:s:1 title=Français "$v/captions.mkv"
rm -f "$captions/.eng.srt" "$captions/.fra.ass"
# A caption file a job attaches, and files that only pretend to be one.
printf '1\n00:00:00,500 --> 00:00:02,000\nattached line\n\n2\n00:00:02,500 --> 00:00:03,500\nsecond\n' \
  >"$captions/attached.srt"
# Noise from a fixed seed, so what FFmpeg takes it for is the same on every machine.
ff -f lavfi -i "anoisesrc=seed=7:sample_rate=8000:duration=0.512" -f u8 -c:a pcm_u8 \
  "$captions/random.srt"
ff -f lavfi -i "color=c=magenta:size=32x32:duration=1" -frames:v 1 -f image2 -c:v png \
  "$captions/picture.srt"

echo "$want" >"$stamp"
