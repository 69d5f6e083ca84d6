// Safe Markdown for CDS Hooks card details: the GitHub-Flavored Markdown subset cards use
// (paragraphs, soft and hard line breaks, headings, rules, nested bullet and numbered lists,
// bold, italics, code spans, backslash escapes, links), built as DOM nodes.
// Nothing is ever assigned to innerHTML, so HTML in a card stays visible text, and a link is
// kept only for an http(s) or mailto URL: record text cannot inject markup or script.

const ESCAPABLE = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const ITEM = /^( *)([-*+]|\d{1,9}[.)]) +(.*)$/;
const RULE = /^ {0,3}([-*_])( *\1){2,} *$/;
const HEADING = /^ {0,3}(#{1,6}) +(.*?)(?: +#+)? *$/;

export function safeUrl(url) {
  const trimmed = String(url ?? "").trim();
  return /^(https?:|mailto:)/i.test(trimmed) ? trimmed : null;
}

// --- blocks: lines -> a small tree of {type, ...} ----------------------------------------
function parseBlocks(text) {
  const root = [];
  let paragraph = null; // {type: "p", lines}
  let lists = []; // open lists, outermost first: {block, indent, contentIndent, item}
  let afterBlank = false;

  const container = () => (lists.length ? lists[lists.length - 1].item.children : root);

  for (const line of String(text ?? "").replace(/\r\n?/g, "\n").split("\n")) {
    if (!line.trim()) {
      paragraph = null;
      afterBlank = true;
      continue;
    }
    const indent = line.length - line.trimStart().length;
    const item = ITEM.exec(line);
    if (RULE.test(line)) {
      paragraph = null;
      lists = [];
      root.push({ type: "hr" });
    } else if (HEADING.test(line)) {
      const [, hashes, content] = HEADING.exec(line);
      paragraph = null;
      lists = [];
      root.push({ type: "h", level: hashes.length, text: content });
    } else if (item) {
      paragraph = null;
      const [, spaces, marker, content] = item;
      const at = spaces.length;
      while (lists.length && at < lists[lists.length - 1].indent) lists.pop();
      let top = lists[lists.length - 1];
      const ordered = /\d/.test(marker);
      if (top && at < top.contentIndent && top.block.ordered !== ordered) {
        lists.pop(); // a list of the other kind at the same level starts a new list
        top = lists[lists.length - 1];
      }
      let frame = top;
      if (!top || at >= top.contentIndent) {
        const block = { type: "list", ordered, start: ordered ? parseInt(marker, 10) : 1, items: [] };
        container().push(block);
        frame = { block, indent: at, contentIndent: at + marker.length + 1, item: null };
        lists.push(frame);
      }
      frame.item = { text: content, children: [] };
      frame.block.items.push(frame.item);
    } else if (lists.length && !afterBlank && !paragraph) {
      lists[lists.length - 1].item.text += "\n" + line.trim(); // lazy continuation
    } else if (lists.length && indent >= lists[lists.length - 1].contentIndent) {
      if (!paragraph) {
        paragraph = { type: "p", lines: [] };
        container().push(paragraph);
      }
      paragraph.lines.push(line.trim());
    } else {
      if (afterBlank || !paragraph) lists = [];
      if (!paragraph) {
        paragraph = { type: "p", lines: [] };
        root.push(paragraph);
      }
      paragraph.lines.push(line.replace(/^ +/, ""));
    }
    afterBlank = false;
  }
  return root;
}

// --- inline: text -> DOM nodes ----------------------------------------------------------
function findClosing(src, from, delim) {
  for (let i = from; i < src.length; i++) {
    if (src[i] === "\\") {
      i++;
      continue;
    }
    if (src.startsWith(delim, i)) {
      if (delim.length === 1 && src[i + 1] === delim) {
        i++; // part of a double delimiter, not ours
        continue;
      }
      return i;
    }
  }
  return -1;
}

function appendInline(parent, src) {
  let buffer = "";
  const flush = () => {
    if (buffer) parent.append(document.createTextNode(buffer));
    buffer = "";
  };
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === "\\" && src[i + 1] === "\n") {
      flush();
      parent.append(document.createElement("br"));
      i++;
    } else if (c === "\\" && i + 1 < src.length && ESCAPABLE.includes(src[i + 1])) {
      buffer += src[++i];
    } else if (c === "\n") {
      const hard = / {2,}$/.test(buffer);
      buffer = buffer.replace(/ +$/, "");
      if (hard) {
        flush();
        parent.append(document.createElement("br"));
      } else buffer += " ";
    } else if (c === "`" && src.indexOf("`", i + 1) > i) {
      const end = src.indexOf("`", i + 1);
      flush();
      const code = document.createElement("code");
      code.textContent = src.slice(i + 1, end);
      parent.append(code);
      i = end;
    } else if ((c === "*" || c === "_") && src[i + 1] === c && findClosing(src, i + 2, c + c) > i + 2) {
      const end = findClosing(src, i + 2, c + c);
      flush();
      const strong = document.createElement("strong");
      appendInline(strong, src.slice(i + 2, end));
      parent.append(strong);
      i = end + 1;
    } else if (
      (c === "*" || c === "_") &&
      !(c === "_" && /\w/.test(src[i - 1] ?? "")) &&
      src[i + 1] !== " " &&
      findClosing(src, i + 1, c) > i + 1
    ) {
      const end = findClosing(src, i + 1, c);
      flush();
      const em = document.createElement("em");
      appendInline(em, src.slice(i + 1, end));
      parent.append(em);
      i = end;
    } else if (c === "[") {
      const close = findClosing(src, i + 1, "]");
      const link = close > i && src[close + 1] === "(" ? /^\(([^()\s]*)\)/.exec(src.slice(close + 1)) : null;
      if (!link) {
        buffer += c;
        continue;
      }
      flush();
      const url = safeUrl(link[1]);
      const anchor = document.createElement(url ? "a" : "span");
      if (url) {
        anchor.href = url;
        anchor.target = "_blank";
        anchor.rel = "noopener noreferrer";
      } else anchor.title = "link removed: only http(s) and mailto links are shown";
      appendInline(anchor, src.slice(i + 1, close));
      parent.append(anchor);
      i = close + link[0].length;
    } else buffer += c;
  }
  flush();
}

// --- render ------------------------------------------------------------------------------
function renderBlocks(parent, blocks) {
  for (const block of blocks) {
    if (block.type === "hr") parent.append(document.createElement("hr"));
    else if (block.type === "h") {
      const heading = document.createElement(`h${Math.min(block.level + 2, 6)}`);
      appendInline(heading, block.text);
      parent.append(heading);
    } else if (block.type === "p") {
      const p = document.createElement("p");
      appendInline(p, block.lines.join("\n"));
      parent.append(p);
    } else {
      const list = document.createElement(block.ordered ? "ol" : "ul");
      if (block.ordered && block.start !== 1) list.start = block.start;
      for (const item of block.items) {
        const li = document.createElement("li");
        appendInline(li, item.text);
        renderBlocks(li, item.children);
        list.append(li);
      }
      parent.append(list);
    }
  }
}

export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  renderBlocks(fragment, parseBlocks(text));
  return fragment;
}
