// The Plait model page: reads GET v1/card, then builds the forms the model can answer
// (predict + explain for a supervised model; search and similarity for an aligned one;
// caption for a captioner).
// Plain DOM, no framework, no build step. The API key lives in `state.apiKey` only: never
// in localStorage, sessionStorage or a cookie, so it is gone when the page is reloaded.
"use strict";

(() => {
  const state = { apiKey: "", card: null };
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- requests and errors

  class RequestError extends Error {
    constructor(message, status = 0, code = "") {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function authHeaders() {
    return state.apiKey ? { Authorization: `Bearer ${state.apiKey}` } : {};
  }

  // A readable sentence from a failed response: the service's {"error": {"message"}},
  // FastAPI's {"detail": ...}, or the status line when the body says nothing useful.
  function errorMessage(response, body, text) {
    if (body && body.error && body.error.message) return body.error.message;
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) {
      return body.detail
        .map((d) => `${(d.loc || []).slice(1).join(".") || "request"}: ${d.msg}`)
        .join("; ");
    }
    if (response.status === 401) return "The server needs a valid API key.";
    if (response.status === 413) return "The upload is larger than the server accepts.";
    if (response.status === 503) {
      const after = response.headers.get("Retry-After");
      return `The server is busy${after ? `; try again in ${after} s` : "; try again soon"}.`;
    }
    const detail = text && !body ? `: ${text.slice(0, 200)}` : "";
    return `The server answered ${response.status} ${response.statusText}${detail}`;
  }

  async function call(path, options = {}) {
    let response;
    try {
      response = await fetch(path, {
        ...options,
        headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
      });
    } catch (error) {
      throw new RequestError(
        `The server could not be reached (${error.message}). Is \`plait serve\` still running?`,
      );
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const code = body && body.error ? body.error.code || "" : "";
      const error = new RequestError(errorMessage(response, body, text), response.status, code);
      if (response.status === 401) askForKey();
      throw error;
    }
    if (body === null) throw new RequestError("The server's answer was not JSON.");
    return body;
  }

  function showError(box, message) {
    box.textContent = message;
    box.hidden = !message;
  }

  function clearErrors(...boxes) {
    for (const box of boxes) showError(box, "");
  }

  async function busy(button, work) {
    const label = button.textContent;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.textContent = `${label}...`;
    try {
      return await work();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.textContent = label;
    }
  }

  // ---------------------------------------------------------------- the API key

  function askForKey() {
    $("auth").hidden = false;
    $("api-key").focus();
  }

  $("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.apiKey = $("api-key").value.trim();
    $("api-key").value = ""; // the key is kept in `state` only, not in the DOM
    $("api-key").placeholder = state.apiKey ? "key set (in memory only)" : "";
    clearErrors($("page-error"));
    if (!state.card) loadCard();
  });

  // ---------------------------------------------------------------- charts

  const format = (value, digits = 3) => {
    if (!Number.isFinite(value)) return String(value);
    const text = value.toFixed(digits);
    return Number(text) === 0 ? (0).toFixed(digits) : text; // never "-0.000"
  };

  // A horizontal bar chart as a list: each item a label, a bar and the value, so screen
  // readers read "label value". `signed` draws bars both ways from a centre line.
  function barChart(list, items, { max = null, signed = false, limit = 30 } = {}) {
    list.replaceChildren();
    const shown = items.slice(0, limit);
    const top = max ?? Math.max(1e-12, ...shown.map((item) => Math.abs(item.value)));
    for (const item of shown) {
      const row = document.createElement("li");
      row.className = "bar-row";
      row.dataset.label = item.label;
      row.dataset.value = String(item.value);
      const label = document.createElement("span");
      label.className = "bar-label";
      label.textContent = item.label;
      label.title = item.label;
      const track = document.createElement("span");
      track.className = signed ? "bar-track signed" : "bar-track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = item.value < 0 ? "bar-fill negative" : "bar-fill";
      const share = Math.min(1, Math.abs(item.value) / top);
      if (signed) {
        fill.style.width = `${share * 50}%`;
        fill.style.left = item.value < 0 ? `${50 - share * 50}%` : "50%";
      } else {
        fill.style.width = `${share * 100}%`;
      }
      if (item.highlight) fill.classList.add("highlight");
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = item.text ?? format(item.value);
      row.append(label, track, value);
      list.append(row);
    }
    if (items.length > shown.length) {
      const more = document.createElement("li");
      more.className = "hint";
      more.textContent = `and ${items.length - shown.length} more`;
      list.append(more);
    }
  }

  // ---------------------------------------------------------------- inputs

  let inputCount = 0;

  function field(labelText) {
    const id = `input-${++inputCount}`;
    const wrap = document.createElement("div");
    wrap.className = "field";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = labelText;
    wrap.append(label);
    return { wrap, id };
  }

  function acceptedTypes(kind) {
    const types = state.card?.limits?.content_types?.[kind];
    return Array.isArray(types) && types.length ? types.join(",") : `${kind}/*`;
  }

  // One input per modality. `value()` gives a string, a File/Blob, or null when empty.
  function textInput(modality, multiline = true) {
    const { wrap, id } = field(`${modality.name} (text)`);
    const box = document.createElement(multiline ? "textarea" : "input");
    box.id = id;
    box.name = modality.name;
    if (multiline) box.rows = 3;
    else box.type = "search";
    const max = state.card?.limits?.max_text_chars;
    if (max) box.maxLength = max;
    wrap.append(box);
    return {
      modality,
      element: wrap,
      value: () => (box.value.trim() ? box.value : null),
    };
  }

  function fileInput(modality) {
    const { wrap, id } = field(`${modality.name} (${modality.kind})`);
    const zone = document.createElement("div");
    zone.className = "drop";
    const input = document.createElement("input");
    input.type = "file";
    input.id = id;
    input.name = modality.name;
    input.accept = acceptedTypes(modality.kind);
    const hint = document.createElement("span");
    hint.className = "drop-hint";
    const prompt = `Drop ${modality.kind === "image" ? "an image" : "a sound file"} here, or choose a file`;
    hint.textContent = prompt;
    const preview = document.createElement(modality.kind === "image" ? "img" : "audio");
    preview.className = "preview";
    preview.hidden = true;
    if (modality.kind === "image") preview.alt = `the chosen ${modality.name} image`;
    else preview.controls = true;
    const clear = document.createElement("button");
    clear.type = "button";
    clear.className = "clear";
    clear.textContent = "Clear";
    clear.setAttribute("aria-label", `Clear the ${modality.name} input (send it as missing)`);
    clear.hidden = true;
    zone.append(input, hint, preview, clear);
    wrap.append(zone);

    const entry = { modality, element: wrap, recording: null, input };
    entry.value = () => input.files[0] || entry.recording;
    entry.show = (blob, name) => {
      if (preview.src) URL.revokeObjectURL(preview.src);
      preview.hidden = !blob;
      clear.hidden = !blob;
      if (blob) preview.src = URL.createObjectURL(blob);
      else preview.removeAttribute("src");
      hint.textContent = (blob && name) || prompt;
    };
    clear.addEventListener("click", () => {
      input.value = "";
      entry.recording = null;
      entry.show(null, "");
    });
    input.addEventListener("change", () => {
      entry.recording = null;
      const file = input.files[0];
      entry.show(file, file ? file.name : "");
    });
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        zone.classList.add("over");
      });
    }
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        input.dispatchEvent(new Event("change"));
      }
    });
    if (modality.kind === "audio") addRecorder(entry, input);
    return entry;
  }

  function unsupportedInput(modality) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent =
      `${modality.name} (${modality.kind}): cannot be given in the page; ` +
      "send it through the API. It is treated as missing here.";
    wrap.append(note);
    return { modality, element: wrap, value: () => null };
  }

  function inputFor(modality, multiline = true) {
    if (modality.kind === "text") return textInput(modality, multiline);
    if (modality.kind === "image" || modality.kind === "audio") return fileInput(modality);
    return unsupportedInput(modality);
  }

  function filename(value, modality) {
    if (value instanceof File) return value.name;
    return `${modality.name}.${modality.kind === "audio" ? "wav" : "bin"}`;
  }

  // A multipart form with one field per filled modality, as the service expects.
  function formOf(entries) {
    const form = new FormData();
    const limit = state.card?.limits?.max_body_bytes;
    let bytes = 0;
    for (const entry of entries) {
      const value = entry.value();
      if (value === null || value === undefined) continue;
      if (typeof value === "string") {
        form.append(entry.modality.name, value);
        bytes += value.length;
      } else {
        form.append(entry.modality.name, value, filename(value, entry.modality));
        bytes += value.size;
      }
    }
    if (limit && bytes > limit) {
      throw new RequestError(
        `The inputs are ${(bytes / 1e6).toFixed(1)} MB; the server accepts at most ` +
          `${(limit / 1e6).toFixed(1)} MB per request.`,
      );
    }
    return form;
  }

  // ---------------------------------------------------------------- recording audio

  // Records from the microphone with Web Audio and encodes 16-bit PCM WAV in the page:
  // browsers record WebM/Opus, which the server's audio reader (soundfile) cannot decode.
  function addRecorder(entry, fileInputElement) {
    const row = document.createElement("div");
    row.className = "row";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "record";
    button.textContent = "Record audio";
    button.setAttribute("aria-pressed", "false");
    const status = document.createElement("span");
    status.className = "status";
    status.setAttribute("aria-live", "polite");
    row.append(button, status);
    entry.element.append(row);
    if (!navigator.mediaDevices || !window.AudioContext) {
      button.disabled = true;
      status.textContent = "Recording needs a browser with microphone access over https or localhost.";
      return;
    }
    let session = null;
    const finish = () => {
      const blob = session.stop();
      session = null;
      button.textContent = "Record audio";
      button.setAttribute("aria-pressed", "false");
      fileInputElement.value = "";
      entry.recording = blob;
      entry.show(blob, "recorded in the browser (WAV)");
      status.textContent = `Recorded ${(blob.seconds || 0).toFixed(1)} s.`;
    };
    button.addEventListener("click", async () => {
      if (session) return finish();
      try {
        const max = state.card?.limits?.max_audio_seconds || 30;
        session = await startRecording(Math.max(1, max - 0.5), (seconds) => {
          status.textContent = `Recording... ${seconds.toFixed(1)} s (click again to stop)`;
        }, () => session && finish());
        button.textContent = "Stop recording";
        button.setAttribute("aria-pressed", "true");
      } catch (error) {
        session = null;
        status.textContent = `Could not record: ${error.message}`;
      }
    });
  }

  async function startRecording(maxSeconds, onTick, onLimit) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const context = new AudioContext();
    await context.resume();
    const source = context.createMediaStreamSource(stream);
    // ScriptProcessorNode is deprecated but needs no extra module file; an AudioWorklet
    // would be the modern route.
    const processor = context.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    let samples = 0;
    processor.onaudioprocess = (event) => {
      const channel = event.inputBuffer.getChannelData(0);
      chunks.push(new Float32Array(channel));
      samples += channel.length;
      onTick(samples / context.sampleRate);
      if (samples / context.sampleRate >= maxSeconds) onLimit();
    };
    source.connect(processor);
    processor.connect(context.destination); // a processor only runs when connected
    return {
      stop() {
        processor.onaudioprocess = null;
        source.disconnect();
        processor.disconnect();
        for (const track of stream.getTracks()) track.stop();
        const rate = context.sampleRate;
        context.close();
        const blob = encodeWav(chunks, rate);
        blob.seconds = samples / rate;
        return blob;
      },
    };
  }

  function encodeWav(chunks, sampleRate) {
    const total = chunks.reduce((n, chunk) => n + chunk.length, 0);
    const buffer = new ArrayBuffer(44 + total * 2);
    const view = new DataView(buffer);
    const ascii = (offset, text) => {
      for (let i = 0; i < text.length; i++) view.setUint8(offset + i, text.charCodeAt(i));
    };
    ascii(0, "RIFF");
    view.setUint32(4, 36 + total * 2, true);
    ascii(8, "WAVE");
    ascii(12, "fmt ");
    view.setUint32(16, 16, true); // fmt chunk size
    view.setUint16(20, 1, true); // PCM
    view.setUint16(22, 1, true); // mono
    view.setUint32(24, sampleRate, true);
    view.setUint32(28, sampleRate * 2, true); // bytes per second
    view.setUint16(32, 2, true); // block align
    view.setUint16(34, 16, true); // bits per sample
    ascii(36, "data");
    view.setUint32(40, total * 2, true);
    let offset = 44;
    for (const chunk of chunks) {
      for (let i = 0; i < chunk.length; i++, offset += 2) {
        const s = Math.max(-1, Math.min(1, chunk[i]));
        view.setInt16(offset, s < 0 ? s * 0x8000 : s * 0x7fff, true);
      }
    }
    return new Blob([buffer], { type: "audio/wav" });
  }

  // ---------------------------------------------------------------- predict and explain

  function hasEndpoint(name) {
    const endpoints = state.card?.endpoints;
    if (!Array.isArray(endpoints) || endpoints.length === 0) return true; // not listed: try
    return endpoints.some((e) => e === name || e === `/v1/${name}` || e.endsWith(`/${name}`));
  }

  function renderPrediction(row) {
    const prediction = row.prediction;
    const text =
      prediction !== null && typeof prediction === "object" && !Array.isArray(prediction)
        ? Object.entries(prediction)
            .map(([key, value]) => `${key}: ${typeof value === "number" ? format(value) : value}`)
            .join(", ")
        : Array.isArray(prediction)
          ? prediction.join(", ") || "(no label above the threshold)"
          : String(prediction);
    $("prediction").textContent = text;
    const probabilities = row.probabilities || {};
    const predicted = new Set(Array.isArray(prediction) ? prediction : [prediction]);
    const items = Object.entries(probabilities)
      .map(([label, value]) => ({ label, value, highlight: predicted.has(label) }))
      .sort((a, b) => b.value - a.value);
    barChart($("probability-chart"), items, { max: 1 });
    $("probability-chart").hidden = items.length === 0;
  }

  function renderAttribution(row) {
    const values = row.attribution || {};
    const items = Object.entries(values).map(([label, value]) => ({ label, value }));
    barChart($("attribution-chart"), items, { signed: true });
    let status = items.length ? "" : "No attribution returned.";
    const baseline = row.attribution_baseline;
    if (items.length && typeof baseline === "number") {
      // Shapley values add up: baseline (every modality missing) + contributions = output
      const total = items.reduce((sum, item) => sum + item.value, baseline);
      const target = row.attribution_target != null ? ` for ${row.attribution_target}` : "";
      status = `Output${target}: ${format(baseline)} with every modality missing, ` +
        `${format(total)} with these inputs.`;
    }
    $("attribution-status").textContent = status;
  }

  async function predict(entries) {
    const results = $("predict-results");
    results.hidden = true; // old results never stand beside a new input's error
    $("probability-chart").replaceChildren();
    $("attribution-chart").replaceChildren();
    clearErrors($("predict-error"));
    const form = formOf(entries);
    if ([...form.keys()].length === 0) {
      throw new RequestError("Give at least one input: an image, a sound or some text.");
    }
    const answer = await call("v1/predict", { method: "POST", body: form });
    const row = answer.rows && answer.rows[0];
    if (!row) throw new RequestError("The server returned no result row.");
    if (row.error) {
      throw new RequestError(`This input could not be used: ${row.error}`);
    }
    renderPrediction(row);
    results.hidden = false;
    if (!hasEndpoint("explain")) {
      $("attribution-status").textContent = "This server does not offer attribution.";
      return;
    }
    $("attribution-status").textContent = "Computing attribution...";
    try {
      const explained = await call("v1/explain", { method: "POST", body: form });
      const explainedRow = explained.rows && explained.rows[0];
      if (!explainedRow || explainedRow.error) {
        $("attribution-status").textContent =
          `No attribution: ${explainedRow ? explainedRow.error : "no row returned"}`;
      } else {
        renderAttribution(explainedRow);
      }
    } catch (error) {
      $("attribution-status").textContent = `No attribution: ${error.message}`;
    }
  }

  function setUpPredict(card) {
    const entries = card.modalities.map((modality) => inputFor(modality));
    $("predict-inputs").replaceChildren(...entries.map((entry) => entry.element));
    $("predict-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      await busy($("predict-submit"), async () => {
        try {
          await predict(entries);
        } catch (error) {
          showError($("predict-error"), error.message);
        }
      });
    });
    $("predict").hidden = false;
  }

  // ---------------------------------------------------------------- search (aligned)

  async function mediaElement(url, alt) {
    // fetched with the key (an <img src> could not send it), shown from a blob URL
    const response = await fetch(url, { headers: authHeaders() });
    if (!response.ok) throw new Error(`media ${response.status}`);
    const blob = await response.blob();
    const source = URL.createObjectURL(blob);
    if (blob.type.startsWith("audio/")) {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.src = source;
      audio.setAttribute("aria-label", alt);
      return audio;
    }
    const image = document.createElement("img");
    image.src = source;
    image.alt = alt;
    return image;
  }

  function renderHits(hits) {
    const list = $("search-hits");
    list.replaceChildren();
    for (const hit of hits) {
      const card = document.createElement("li");
      card.className = "hit";
      card.dataset.id = hit.id;
      const media = document.createElement("div");
      media.className = "hit-media";
      if (hit.media_url) {
        media.textContent = "loading...";
        // relative, like every other call, so a path prefix in front of the server works
        mediaElement(hit.media_url.replace(/^\//, ""), `item ${hit.id}`)
          .then((element) => media.replaceChildren(element))
          .catch((error) => {
            media.textContent = `no preview (${error.message})`;
          });
      } else {
        media.textContent = "no media";
      }
      const title = document.createElement("p");
      title.className = "hit-title";
      title.textContent = `#${hit.rank} ${hit.id}`;
      const score = document.createElement("p");
      score.className = "hit-score";
      score.textContent = `score ${format(hit.score)}`;
      const columns = document.createElement("dl");
      for (const [key, value] of Object.entries(hit.columns || {})) {
        const term = document.createElement("dt");
        term.textContent = key;
        const detail = document.createElement("dd");
        const text = String(value ?? "");
        // a stored file path reads better as its file name (the full path on hover)
        detail.textContent = /^[^\s]*[\\/][^\s]+$/.test(text) ? text.split(/[\\/]/).pop() : text;
        detail.title = text;
        columns.append(term, detail);
      }
      card.append(media, title, score, columns);
      list.append(card);
    }
    if (!hits.length) {
      const none = document.createElement("li");
      none.className = "hint";
      none.textContent = "No hits.";
      list.append(none);
    }
  }

  function setUpSearch(card, pairModalities) {
    const entries = pairModalities.map((modality) => inputFor(modality, false));
    $("search-inputs").replaceChildren(...entries.map((entry) => entry.element));
    $("search-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors($("search-error"));
      $("search-hits").replaceChildren();
      await busy($("search-submit"), async () => {
        try {
          const filled = entries.filter((entry) => entry.value());
          if (filled.length !== 1) {
            throw new RequestError(
              `Give exactly one query: ${pairModalities.map((m) => m.name).join(" or ")}.`,
            );
          }
          const form = formOf(filled);
          form.append("k", String(Math.max(1, Number($("search-k").value) || 12)));
          const answer = await call("v1/search", { method: "POST", body: form });
          renderHits(answer.hits || []);
        } catch (error) {
          $("search-hits").replaceChildren();
          showError($("search-error"), error.message);
        }
      });
    });
    $("search").hidden = false;
  }

  // ---------------------------------------------------------------- similarity (aligned)

  // One file (image or sound) against texts: cosine per text (/v1/similarity), or, with
  // the texts taken as class names, zero-shot probabilities (/v1/zeroshot).
  function setUpSimilarity(card, query) {
    const entry = inputFor(query);
    $("similarity-inputs").replaceChildren(entry.element);
    const texts = () =>
      $("similarity-texts")
        .value.split("\n")
        .map((t) => t.trim())
        .filter(Boolean);
    const request = (field, values, atLeast) => {
      const value = entry.value();
      if (!value || values.length < atLeast) {
        const what = atLeast > 1 ? `at least ${atLeast} texts` : "at least one text";
        throw new RequestError(`Give the ${query.name} and ${what}.`);
      }
      const form = new FormData();
      form.append("file", value, filename(value, query));
      for (const text of values) form.append(field, text);
      return { method: "POST", body: form };
    };
    const run = async (button, work) => {
      clearErrors($("similarity-error"));
      $("similarity-chart").replaceChildren();
      $("similarity-result").textContent = "";
      await busy(button, async () => {
        try {
          await work();
        } catch (error) {
          $("similarity-chart").replaceChildren();
          showError($("similarity-error"), error.message);
        }
      });
    };
    $("similarity-form").addEventListener("submit", (event) => {
      event.preventDefault();
      run($("similarity-submit"), async () => {
        const candidates = texts();
        const answer = await call("v1/similarity", request("text", candidates, 1));
        const scores = answer.scores || [];
        const items = candidates.map((label, i) => ({ label, value: scores[i] }));
        items.sort((a, b) => b.value - a.value);
        if (items.length) items[0].highlight = true;
        $("similarity-result").textContent = "Cosine similarity of each text:";
        barChart($("similarity-chart"), items, { max: 1, signed: true });
      });
    });
    if (hasEndpoint("zeroshot")) {
      $("zeroshot-submit").hidden = false;
      $("zeroshot-submit").addEventListener("click", () =>
        run($("zeroshot-submit"), async () => {
          const answer = await call("v1/zeroshot", request("classes", texts(), 2));
          const probabilities = answer.probabilities || {};
          const items = Object.entries(probabilities)
            .map(([label, value]) => ({ label, value, highlight: label === answer.prediction }))
            .sort((a, b) => b.value - a.value);
          $("similarity-result").textContent = `Zero-shot: ${answer.prediction}`;
          barChart($("similarity-chart"), items, { max: 1 });
        }),
      );
    }
    $("similarity").hidden = false;
  }

  // ---------------------------------------------------------------- caption (captioner)

  function renderCaptions(rows, files) {
    const list = $("caption-results");
    list.replaceChildren();
    rows.forEach((row, i) => {
      const item = document.createElement("li");
      item.className = row.error ? "caption error-row" : "caption";
      const name = document.createElement("span");
      name.className = "caption-file";
      name.textContent = files[i] instanceof File ? files[i].name : `input ${i + 1}`;
      const text = document.createElement("span");
      text.className = "caption-text";
      text.textContent = row.error ? `could not be captioned: ${row.error}` : row.caption;
      item.append(name, text);
      list.append(item);
    });
  }

  // One or several files of the source modality -> a caption each (/v1/caption).
  function setUpCaption(card) {
    const info = card.captioning || {};
    const source = card.modalities.find((m) => m.name === info.source) || card.modalities[0];
    const entry = inputFor(source);
    if (entry.input) entry.input.multiple = true;
    const length = $("caption-length");
    if (info.max_length) length.max = String(info.max_length);
    if (info.defaults) {
      length.value = String(info.defaults.max_length);
      $("caption-beams").value = String(info.defaults.num_beams);
    }
    $("caption-inputs").replaceChildren(entry.element);
    $("caption-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors($("caption-error"));
      $("caption-results").replaceChildren();
      await busy($("caption-submit"), async () => {
        try {
          const chosen = entry.input && entry.input.files.length ? [...entry.input.files] : [];
          const files = chosen.length ? chosen : entry.recording ? [entry.recording] : [];
          if (!files.length) {
            const what = source.kind === "audio" ? "a sound" : "a picture";
            throw new RequestError(`Give ${what} to caption.`);
          }
          const form = new FormData();
          for (const file of files) form.append(source.name, file, filename(file, source));
          if ($("caption-beams").value) form.append("num_beams", $("caption-beams").value);
          if (length.value) form.append("max_length", length.value);
          const answer = await call("v1/caption", { method: "POST", body: form });
          renderCaptions(answer.rows || [], files);
        } catch (error) {
          showError($("caption-error"), error.message);
        }
      });
    });
    $("caption").hidden = false;
  }

  // ---------------------------------------------------------------- the card

  function renderCard(card) {
    document.title = `${card.name} - Plait`;
    $("model-name").textContent = card.name;
    const kinds = card.modalities.map((m) => `${m.name} (${m.kind})`).join(", ");
    const labels =
      !["alignment", "captioning"].includes(card.task) &&
      Array.isArray(card.labels) &&
      card.labels.length
        ? `; ${card.labels.length} labels`
        : "";
    const article = /^[aeiou]/i.test(card.task) ? "An" : "A";
    $("model-summary").textContent =
      `${article} ${card.task} model on ${kinds}${labels}; runtime ${card.runtime}.`;
    if (card.auth) $("auth").hidden = false;

    if (card.task === "captioning") {
      setUpCaption(card);
    } else if (card.task === "alignment") {
      const byName = Object.fromEntries(card.modalities.map((m) => [m.name, m]));
      const pair = (card.pair || card.modalities.map((m) => m.name)).map((n) => byName[n]);
      if (card.index && hasEndpoint("search")) setUpSearch(card, pair.filter(Boolean));
      const text = pair.find((m) => m && m.kind === "text");
      const other = pair.find((m) => m && m !== text);
      if (text && other && hasEndpoint("similarity")) setUpSimilarity(card, other);
      if (!card.index) {
        $("model-summary").textContent += " No index is loaded: start the server with --index to search.";
      }
    } else {
      setUpPredict(card);
    }
  }

  async function loadCard() {
    try {
      state.card = await call("v1/card");
    } catch (error) {
      let message = `Could not read the model card: ${error.message}`;
      if (error.status === 401) {
        message = state.apiKey
          ? "The server did not accept this API key; enter the key it was started with."
          : "This server needs an API key: enter it above.";
      }
      showError($("page-error"), message);
      $("model-summary").textContent = "";
      return;
    }
    renderCard(state.card);
    document.body.dataset.ready = "true"; // for tests and scripts: the forms are built
  }

  loadCard();
})();
