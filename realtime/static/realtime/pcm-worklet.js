// The caption page's audio tap: mono 16 kHz PCM16 (pcm_s16le) in 100 ms frames.
// Runs in the AudioWorklet's thread; the page (live.js) sends each frame it posts over the
// WebSocket. The AudioContext runs at 16 kHz where the browser allows it (it then
// resamples the microphone itself); elsewhere the samples are resampled here, linearly.
const TARGET_RATE = 16000;
const FRAME_SAMPLES = 1600; // 100 ms: 3200 bytes

class PcmSender extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.position = 0; // of the next output sample, in input samples from this block's start
    this.previous = 0; // the last input sample of the block before
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  push(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.frame[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    if (this.filled === FRAME_SAMPLES) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.filled = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const length = channels[0].length;
    const mono = new Float32Array(length);
    for (const channel of channels) {
      for (let i = 0; i < length; i++) mono[i] += channel[i] / channels.length;
    }
    if (this.step === 1) {
      for (let i = 0; i < length; i++) this.push(mono[i]);
      return true;
    }
    while (this.position < length - 1) {
      const index = Math.floor(this.position);
      const fraction = this.position - index;
      const before = index < 0 ? this.previous : mono[index];
      this.push(before + (mono[index + 1] - before) * fraction);
      this.position += this.step;
    }
    this.position -= length;
    this.previous = mono[length - 1];
    return true;
  }
}

registerProcessor("pcm-sender", PcmSender);
