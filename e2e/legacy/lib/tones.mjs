// Audio for the legacy call tests, with wrtc's non-standard API (`@roamhq/wrtc`): a sine tone as a client's
// "microphone" (RTCAudioSource; Node has no microphone and the SDK takes a stream instead), and what arrives on a
// call's incoming track (RTCAudioSink), measured: how many 10 ms frames came, how many were audible, and the
// frequency of the audible ones (upward zero crossings per second). Distinct tones per side (440 Hz one way,
// 660 Hz the other) show that each side hears the other and not itself.

const SAMPLE_RATE = 48000;
const FRAME = SAMPLE_RATE / 100; // 10 ms, what RTCAudioSource takes per onData
const AMPLITUDE = 8000; // of 32767: well clear of silence after Opus, far from clipping

/**
 * A tone of `hz` fed to a new RTCAudioSource in real time; {stream, stop()}. Frames are pushed by elapsed time,
 * not one per timer tick, so that a late timer (a busy machine) makes no gap in the tone.
 */
export function startTone(wrtc, hz) {
  const source = new wrtc.nonstandard.RTCAudioSource();
  const track = source.createTrack();
  const stream = new wrtc.MediaStream([track]);
  const started = Date.now();
  let sent = 0;
  let phase = 0;
  const step = (2 * Math.PI * hz) / SAMPLE_RATE;
  const timer = setInterval(() => {
    const due = Math.floor((Date.now() - started) / 10);
    // After a long stall send at most 100 ms at once: WebRTC would drop older audio anyway.
    if (due - sent > 10) sent = due - 10;
    while (sent < due) {
      const samples = new Int16Array(FRAME);
      for (let i = 0; i < FRAME; i++) {
        samples[i] = Math.round(Math.sin(phase) * AMPLITUDE);
        phase += step;
      }
      phase %= 2 * Math.PI;
      source.onData({ samples, sampleRate: SAMPLE_RATE, bitsPerSample: 16, channelCount: 1, numberOfFrames: FRAME });
      sent += 1;
    }
  }, 10);
  return {
    stream,
    stop: () => {
      clearInterval(timer);
      track.stop();
    },
  };
}

/**
 * Listens to `track` (a remote audio track) for `ms` milliseconds; resolves to {frames, audibleFrames, frequency,
 * rms}: frequency in Hz over the audible frames (null if none), rms of those frames (of 32767).
 */
export function measureTone(wrtc, track, ms) {
  const sink = new wrtc.nonstandard.RTCAudioSink(track);
  let frames = 0;
  let audibleFrames = 0;
  let audibleSamples = 0;
  let crossings = 0;
  let sumSquares = 0;
  let sampleRate = SAMPLE_RATE;
  // Whether the wave was last below the lower threshold; kept across frames so that no cycle is lost at a frame
  // boundary (null: no audible frame just before).
  let low = null;
  sink.ondata = (data) => {
    frames += 1;
    sampleRate = data.sampleRate;
    const channels = data.channelCount;
    const count = data.numberOfFrames;
    // The first channel only (interleaved samples).
    let energy = 0;
    for (let i = 0; i < count; i++) energy += data.samples[i * channels] ** 2;
    const rms = Math.sqrt(energy / count);
    if (rms < 300) {
      low = null; // silence or comfort noise, no tone to count
      return;
    }
    audibleFrames += 1;
    audibleSamples += count;
    sumSquares += energy;
    // Upward zero crossings with a little hysteresis, so that noise around zero is not counted.
    const threshold = rms * 0.2;
    if (low === null) low = data.samples[0] < -threshold;
    for (let i = 0; i < count; i++) {
      const value = data.samples[i * channels];
      if (low && value > threshold) {
        crossings += 1;
        low = false;
      } else if (value < -threshold) {
        low = true;
      }
    }
  };
  return new Promise((resolve) => {
    setTimeout(() => {
      sink.stop();
      resolve({
        frames,
        audibleFrames,
        // At most one crossing is lost per audible stretch (where it starts): a fraction of a hertz over seconds.
        frequency: audibleSamples ? (crossings * sampleRate) / audibleSamples : null,
        rms: audibleSamples ? Math.sqrt(sumSquares / audibleSamples) : 0,
      });
    }, ms);
  });
}
