// The chat page: send with Enter, show the reply as it streams in. Text is only ever set with
// textContent, so nothing a user or the model writes can become markup.
"use strict";
(function () {
  const log = document.getElementById("log");
  const form = document.getElementById("say");
  const box = document.getElementById("text");
  const picker = document.getElementById("persona");
  let busy = false;

  function line(role, who, text) {
    const div = document.createElement("div");
    div.className = "line " + role;
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    div.append(name, body);
    log.append(div);
    log.scrollTop = log.scrollHeight;
    return body;
  }

  async function send(text) {
    busy = true;
    line("user", "you", text);
    const name = picker.options[picker.selectedIndex].textContent;
    const shown = text.startsWith("/") ? null : line("assistant", name, "…");
    let streamed = "";
    try {
      const res = await fetch("/chat/send", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: text, persona: picker.value }),
      });
      if (!res.ok) {
        const err = await res.text();
        (shown || line("system", "", "")).textContent = "(" + res.status + ": " + err + ")";
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = pending.indexOf("\n")) >= 0) {
          const item = JSON.parse(pending.slice(0, cut));
          pending = pending.slice(cut + 1);
          if (item.delta !== undefined) { streamed += item.delta; shown.textContent = streamed; }
          else if (item.reply !== undefined) { shown.textContent = item.reply; if (item.name) shown.previousSibling.textContent = item.name; }
          else if (item.command !== undefined) { line("command", "", item.command); }
          else if (item.silent) { shown.textContent = "(no answer)"; }
          else if (item.error !== undefined) { (shown || line("system", "", "")).textContent = "(" + item.error + ")"; }
          else if (item.voice !== undefined) {
            const audio = document.createElement("audio");
            audio.controls = true;
            audio.src = item.voice;
            shown.parentNode.append(audio);
          }
          log.scrollTop = log.scrollHeight;
        }
      }
    } catch (e) {
      line("system", "", "(connection lost: " + e + ")");
    } finally {
      busy = false;
    }
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const text = box.value.trim();
    if (!text || busy) return;
    box.value = "";
    send(text);
  });
  box.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  picker.addEventListener("change", async function () {
    await fetch("/chat/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: "", persona: picker.value }),
    });
    location.reload();  // the chosen character's own conversation with this browser
  });
})();
