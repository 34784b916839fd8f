// The caption page (/live/): a microphone or a browser tab, captioned as it is spoken.
//
// The key is typed into a password field and kept in sessionStorage (this tab only). It
// travels only as the WebSocket subprotocol `key.<key>` and as `Authorization: Bearer` on
// API calls, never in a URL: query strings end up in proxy and web logs.
// Protocol: docs/streaming.md. The page in words: docs/caption-page.md.
(() => {
  "use strict";

  const KEY_STORE = "scribe.caption-page.key";
  const FORMATS = ["txt", "srt", "vtt"];
  const QUEUE_LIMIT = 100; // frames (10 s) kept while the session is being opened
  const BEHIND_BYTES = 512 * 1024; // unsent audio (16 s) that means the network is behind

  // What each close code means to a person (realtime/consumers.py).
  const CLOSES = {
    1000: "Stopped.",
    4401: "Refused (4401): the key is not valid — mistyped, revoked or expired. Check it, or ask an operator for a new one.",
    4403: "Refused (4403): this key lacks the 'stream' scope, so it cannot caption. Ask an operator for a key with it.",
    4429: "Busy (4429): every realtime worker already serves as many sessions as it can. Try again in a minute.",
    4503: "No realtime worker (4503): none is running or none answered in time. Try again shortly; if it lasts, tell the operator.",
    4001: "Ended (4001): the key was revoked during the session. The captions so far are kept.",
    4500: "Interrupted (4500): the realtime worker was lost. The captions so far are kept; Start again to go on.",
    4413: "Ended (4413): an audio frame was too large.",
  };

  const $ = (id) => document.getElementById(id);
  const page = {
    key: $("key"), language: $("language"), glossary: $("glossary"),
    glossaryChoice: $("glossary-choice"), keywordsOn: $("keywords-on"),
    startMic: $("start-mic"), startTab: $("start-tab"), stop: $("stop"),
    status: $("status"), scopes: $("scopes"), captions: $("captions"),
    finals: $("finals"), partial: $("partial"), keywordsPane: $("keywords-pane"),
    keywords: $("keywords"), downloads: $("downloads"), links: $("download-links"),
    insecure: $("insecure"),
  };
  const workletUrl = document.currentScript.dataset.worklet;

  let scopes = null; // the key's scopes, once /v1/keys/me answered
  let session = null; // the running session: socket, audio, job id, segments

  function say(text, state = "") {
    page.status.textContent = text;
    page.status.dataset.state = state;
  }

  function authHeaders() {
    return { Authorization: `Bearer ${page.key.value.trim()}` };
  }

  async function apiError(response) {
    try {
      const body = await response.json();
      return (body.error && body.error.message) || body.detail || response.statusText;
    } catch (_) {
      return response.statusText;
    }
  }

  // --- the key and what it may do ------------------------------------------------------

  async function checkKey() {
    const key = page.key.value.trim();
    scopes = null;
    page.glossaryChoice.hidden = true;
    page.scopes.hidden = true;
    if (!key) return;
    const response = await fetch("/v1/keys/me", { headers: authHeaders() });
    if (key !== page.key.value.trim()) return; // typed on meanwhile
    if (!response.ok) {
      showScopeNote(`This key was not accepted: ${await apiError(response)}`);
      return;
    }
    scopes = (await response.json()).scopes;
    const missing = [];
    if (!scopes.includes("stream")) missing.push("'stream' (needed to caption at all)");
    if (!scopes.includes("glossary")) missing.push("'glossary' (so no glossary choice)");
    if (!scopes.includes("transcribe")) missing.push("'transcribe' (so no transcript downloads)");
    if (missing.length) showScopeNote(`This key lacks the scope${missing.length > 1 ? "s" : ""} ${missing.join(", ")}.`);
    if (scopes.includes("glossary")) await listGlossaries();
  }

  function showScopeNote(text) {
    page.scopes.textContent = text;
    page.scopes.hidden = false;
  }

  async function listGlossaries() {
    const chosen = page.glossary.value;
    page.glossary.replaceChildren(new Option("none", ""));
    let url = "/v1/glossaries";
    while (url) {
      const response = await fetch(url, { headers: authHeaders() });
      if (!response.ok) return;
      const body = await response.json();
      for (const glossary of body.results || []) {
        page.glossary.append(new Option(glossary.name, glossary.id));
      }
      url = body.next ? new URL(body.next).pathname + new URL(body.next).search : null;
    }
    page.glossary.value = chosen;
    page.glossaryChoice.hidden = false;
  }

  // --- audio ---------------------------------------------------------------------------

  async function capture(source) {
    if (source === "microphone") {
      return navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 }, video: false });
    }
    // Browsers ask for video with a display capture; only its audio is used.
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
    if (stream.getAudioTracks().length === 0) {
      stream.getTracks().forEach((track) => track.stop());
      throw new Error(
        "The tab or screen was shared without its audio. Start again and tick " +
          "'Share tab audio' (or 'Share system audio') in the browser's picker."
      );
    }
    return stream;
  }

  function audioContext() {
    try {
      return new AudioContext({ sampleRate: 16000 });
    } catch (_) {
      return new AudioContext(); // pcm-worklet.js resamples to 16 kHz itself
    }
  }

  async function startAudio(current) {
    const context = current.context;
    await context.audioWorklet.addModule(workletUrl);
    const input = context.createMediaStreamSource(current.media);
    const tap = new AudioWorkletNode(context, "pcm-sender");
    const silent = context.createGain();
    silent.gain.value = 0; // the tap must be pulled by the graph, but nothing is heard
    input.connect(tap).connect(silent).connect(context.destination);
    tap.port.onmessage = (message) => sendAudio(current, message.data);
    current.media.getAudioTracks()[0].addEventListener("ended", () => {
      if (session === current) stop("The shared tab or screen stopped sharing.");
    });
    await context.resume();
  }

  function sendAudio(current, frame) {
    if (current.ended) return;
    if (!current.ready) {
      current.queue.push(frame);
      if (current.queue.length > QUEUE_LIMIT) current.queue.shift();
      return;
    }
    current.socket.send(frame);
    const behind = current.socket.bufferedAmount > BEHIND_BYTES;
    if (behind !== current.behind) {
      current.behind = behind;
      if (behind) say("Falling behind: the network cannot keep up with the audio.", "problem");
      else say(liveWords(current), "live");
    }
  }

  function stopAudio(current) {
    if (current.audioStopped) return;
    current.audioStopped = true;
    if (current.media) current.media.getTracks().forEach((track) => track.stop());
    current.context.close().catch(() => {});
  }

  // --- the session ---------------------------------------------------------------------

  function startOptions() {
    const options = { sample_rate: 16000, encoding: "pcm_s16le" };
    if (page.language.value !== "auto") options.language = page.language.value;
    if (!page.glossaryChoice.hidden && page.glossary.value) {
      options.glossary_id = page.glossary.value;
    }
    // Sent only when asked for: a server without live keywords refuses unknown options.
    if (page.keywordsOn.checked) options.keywords = true;
    return options;
  }

  async function start(source) {
    if (session) return;
    const key = page.key.value.trim();
    if (!key) {
      say("Enter an API key first (an operator makes one in the admin: API keys).", "problem");
      page.key.focus();
      return;
    }
    // In the click's own turn: browsers let a page make sound (and hear) after a gesture.
    const current = {
      source, context: audioContext(), queue: [], segments: [], jobId: null,
      ready: false, ended: false, behind: false, lastError: null, media: null,
    };
    session = current;
    clearPage();
    setRunning(true);
    say(source === "microphone" ? "Asking for the microphone…" : "Choose a tab or screen to caption…");
    try {
      current.media = await capture(source);
    } catch (error) {
      end(current, `Could not capture ${source === "microphone" ? "the microphone" : "a tab or screen"}: ${error.message}`, "problem");
      return;
    }
    say("Connecting…");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/v1/stream`, ["scribe", `key.${key}`]);
    socket.binaryType = "arraybuffer";
    current.socket = socket;
    socket.onopen = () => socket.send(JSON.stringify({ type: "start", options: startOptions() }));
    socket.onmessage = (message) => {
      if (typeof message.data === "string" && session === current) receive(JSON.parse(message.data));
    };
    socket.onclose = (event) => closed(current, event.code);
    startAudio(current).catch((error) => {
      if (!current.ended) stop(`The audio could not be started: ${error.message}`);
    });
  }

  function stop(reason) {
    const current = session;
    if (!current) return;
    stopAudio(current);
    if (current.socket && current.socket.readyState === WebSocket.OPEN && current.ready) {
      current.socket.send(JSON.stringify({ type: "stop" }));
      say(reason || "Stopping: the last words are being transcribed…");
    } else {
      if (current.socket) current.socket.close();
      end(current, reason || "Stopped.");
    }
  }

  function liveWords(current) {
    return current.source === "microphone" ? "Live: captioning the microphone." : "Live: captioning the shared tab or screen.";
  }

  // One event from the server (or from a test: window.scribeCaptions.receive).
  function receive(event) {
    const current = session;
    // The server says when it falls behind, not when it has caught up: quiet for 5 s is.
    if (current && current.behindSaidAt && Date.now() - current.behindSaidAt > 5000) {
      current.behindSaidAt = null;
      say(liveWords(current), "live");
    }
    switch (event.type) {
      case "ready":
        if (!current) break;
        current.jobId = event.job_id;
        current.ready = true;
        for (const frame of current.queue.splice(0)) current.socket.send(frame);
        say(liveWords(current), "live");
        break;
      case "partial":
        page.partial.textContent = event.text;
        break;
      case "final":
        appendFinal(event.segment);
        if (current) current.segments.push(event.segment);
        break;
      case "keywords":
        showKeywords(event.keywords || []);
        break;
      case "error":
        if (event.code === "falling_behind" || event.code === "dropping_audio") {
          say(`Falling behind: ${event.message}`, "problem");
          if (current) current.behindSaidAt = Date.now();
        } else if (current) {
          current.lastError = event.message;
        }
        break;
      case "closed":
        if (current && event.job_id) current.jobId = event.job_id;
        break;
    }
  }

  function appendFinal(segment) {
    const follow = page.captions.scrollHeight - page.captions.scrollTop - page.captions.clientHeight < 40;
    const span = document.createElement("span");
    span.className = "final";
    span.textContent = `${segment.text.trim()} `;
    page.finals.append(span);
    page.partial.textContent = "";
    if (follow) page.captions.scrollTop = page.captions.scrollHeight;
  }

  function showKeywords(keywords) {
    page.keywordsPane.hidden = false;
    page.keywords.replaceChildren(
      ...keywords.map((keyword) => {
        const item = document.createElement("li");
        const text = document.createElement("span");
        text.className = "keyword";
        text.textContent = keyword.text;
        const about = document.createElement("span");
        about.className = "category";
        about.textContent = `${keyword.category || ""}${keyword.count > 1 ? ` ×${keyword.count}` : ""}`;
        item.append(text, about);
        return item;
      })
    );
  }

  function closed(current, code) {
    if (current.ended) return;
    const words = CLOSES[code] || `The connection ended (code ${code}). The captions so far are kept.`;
    const detail = code === 1000 || !current.lastError || CLOSES[code] ? "" : ` ${current.lastError}`;
    end(current, code === 1000 ? "Stopped. The transcript can be downloaded below." : words + detail,
      code === 1000 ? "" : "problem");
  }

  function end(current, text, state = "") {
    current.ended = true;
    stopAudio(current);
    if (session === current) session = null;
    setRunning(false);
    page.partial.textContent = "";
    say(text, state);
    if (current.jobId) offerDownloads(current);
  }

  // --- downloads -----------------------------------------------------------------------

  async function offerDownloads(current) {
    page.downloads.hidden = false;
    if (scopes && !scopes.includes("transcribe")) {
      page.links.textContent = "Downloads need the 'transcribe' scope, which this key lacks.";
      return;
    }
    page.links.textContent = "Preparing the transcript…";
    const links = [];
    for (const format of FORMATS) {
      const response = await fetch(`/v1/jobs/${current.jobId}/result?format=${format}`, { headers: authHeaders() });
      let blob;
      let note = "";
      if (response.ok) {
        blob = await response.blob();
      } else {
        // The job has no result yet (its worker was lost): what reached this page.
        blob = new Blob([fromPage(current.segments, format)], { type: "text/plain" });
        note = " (as captioned on this page)";
      }
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `captions-${current.jobId.slice(0, 8)}.${format}`;
      link.dataset.format = format;
      link.textContent = `${format}${note}`;
      links.push(link);
    }
    page.links.replaceChildren(...links);
  }

  function clock(seconds, separator) {
    const ms = Math.round(seconds * 1000);
    const pad = (n, width = 2) => String(n).padStart(width, "0");
    return `${pad(Math.floor(ms / 3600000))}:${pad(Math.floor(ms / 60000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}${separator}${pad(ms % 1000, 3)}`;
  }

  function fromPage(segments, format) {
    if (format === "txt") return segments.map((s) => s.text.trim()).join("\n") + "\n";
    const separator = format === "srt" ? "," : ".";
    const cues = segments.map((s, i) =>
      `${format === "srt" ? `${i + 1}\n` : ""}${clock(s.start, separator)} --> ${clock(s.end, separator)}\n${s.text.trim()}\n`);
    return (format === "vtt" ? "WEBVTT\n\n" : "") + cues.join("\n");
  }

  // --- the page ------------------------------------------------------------------------

  function clearPage() {
    page.finals.replaceChildren();
    page.partial.textContent = "";
    page.keywords.replaceChildren();
    page.keywordsPane.hidden = true;
    for (const link of page.links.querySelectorAll("a")) URL.revokeObjectURL(link.href);
    page.links.replaceChildren();
    page.downloads.hidden = true;
  }

  function setRunning(running) {
    page.startMic.disabled = page.startTab.disabled = running || !window.isSecureContext;
    page.stop.disabled = !running;
    page.key.disabled = page.language.disabled = page.glossary.disabled = running;
    page.keywordsOn.disabled = running;
  }

  page.key.value = sessionStorage.getItem(KEY_STORE) || "";
  page.key.addEventListener("input", () => sessionStorage.setItem(KEY_STORE, page.key.value.trim()));
  page.key.addEventListener("change", () => checkKey().catch(() => {}));
  page.startMic.addEventListener("click", () => start("microphone"));
  page.startTab.addEventListener("click", () => start("tab"));
  page.stop.addEventListener("click", () => stop());
  if (!window.isSecureContext) {
    page.insecure.hidden = false;
    say("Captioning is off: this page was opened over plain http (see above).", "problem");
  } else if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
    page.startTab.hidden = true; // phones: no tab or screen capture
  }
  setRunning(false);
  if (page.key.value) checkKey().catch(() => {});

  // For tests and for pages that embed this one: hand the page an event as if the server
  // had sent it ({"type": "final" | "partial" | "keywords" | …}).
  window.scribeCaptions = { receive };
})();
