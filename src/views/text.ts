/**
 * Block Kit as plain terminal text, for rehearsals and test failure messages. Pure functions:
 * they take blocks as sent to Slack (or as parsed back by the fake) and never do I/O.
 */

type Obj = Record<string, unknown>;

const RULE = "─".repeat(40);
const FIELD_GAP = 4;

const EMOJI: Record<string, string> = {
  white_check_mark: "✅",
  heavy_check_mark: "✔",
  x: "❌",
  warning: "⚠️",
  rotating_light: "🚨",
  hourglass: "⌛",
  hourglass_flowing_sand: "⏳",
  rocket: "🚀",
  large_green_circle: "🟢",
  large_yellow_circle: "🟡",
  red_circle: "🔴",
  white_circle: "⚪",
  black_circle: "⚫",
  no_entry: "⛔",
  lock: "🔒",
  unlock: "🔓",
  leftwards_arrow_with_hook: "↩️",
  arrow_right: "➡️",
  arrows_counterclockwise: "🔄",
  repeat: "🔁",
  stopwatch: "⏱️",
  clock3: "🕒",
  bar_chart: "📊",
  chart_with_upwards_trend: "📈",
  moneybag: "💰",
  gear: "⚙️",
  mag: "🔍",
  information_source: "ℹ️",
  question: "❓",
  tada: "🎉",
  fast_forward: "⏩",
  double_vertical_bar: "⏸️",
  black_square_for_stop: "⏹️",
  eyes: "👀",
  memo: "📝",
  package: "📦",
  globe_with_meridians: "🌐",
  floppy_disk: "💾",
  bust_in_silhouette: "👤",
  thumbsup: "👍",
  "+1": "👍",
  thumbsdown: "👎",
};

/** Emoji shortcodes Cutover uses, as the characters Slack shows; unknown ones stay `:name:`. */
function emoji(text: string): string {
  return text.replace(/:([a-z0-9_+-]+):/g, (whole, name: string) => EMOJI[name] ?? whole);
}

function decodeEntities(text: string): string {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

/**
 * Slack mrkdwn made readable: `*bold*`, `_italic_`, `~strike~` and code stay as typed;
 * `<url|label>` → `label (url)`, `<@U1>` → `@U1`, `<#C1|ops>` → `#ops`, `<!here>` → `@here`,
 * emoji shortcodes → emoji, `&lt;` `&gt;` `&amp;` decoded.
 */
export function mrkdwnToText(text: string): string {
  const linked = text.replace(/<([^<>]+)>/g, (_whole, inner: string) => {
    const bar = inner.indexOf("|");
    const target = bar === -1 ? inner : inner.slice(0, bar);
    const label = bar === -1 ? undefined : inner.slice(bar + 1);
    if (target.startsWith("@")) return label ? `@${label.replace(/^@/, "")}` : target;
    if (target.startsWith("#")) return `#${label ?? target.slice(1)}`;
    if (target.startsWith("!")) {
      const special = target.slice(1);
      if (special.startsWith("subteam^"))
        return label ? `@${label.replace(/^@/, "")}` : `@${special.slice(8)}`;
      if (special.startsWith("date^")) return label ?? special;
      return `@${special}`;
    }
    if (label === undefined || label === target) return target;
    return `${label} (${target})`;
  });
  return emoji(decodeEntities(linked));
}

/** Text of a text object: mrkdwn made readable, plain_text as is (emoji expanded). */
function textOf(t: unknown): string {
  const o = obj(t);
  if (!o) return typeof t === "string" ? t : "";
  const text = typeof o.text === "string" ? o.text : "";
  return o.type === "mrkdwn" ? mrkdwnToText(text) : emoji(text);
}

function obj(v: unknown): Obj | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : undefined;
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/** An interactive element as a person sees it: a button is `[ Label ]`. */
function elementText(el: unknown): string {
  const e = obj(el);
  if (!e) return "";
  const optionText = (o: unknown) => textOf(obj(o)?.text);
  switch (e.type) {
    case "button":
      return `[ ${textOf(e.text)} ]`;
    case "static_select":
    case "external_select":
    case "users_select":
    case "conversations_select":
    case "channels_select": {
      const chosen =
        optionText(e.initial_option) ||
        str(e.initial_user) ||
        str(e.initial_conversation) ||
        str(e.initial_channel) ||
        textOf(e.placeholder) ||
        "Select";
      return `[ ${chosen} ▾ ]`;
    }
    case "multi_static_select":
    case "multi_users_select":
    case "multi_conversations_select":
    case "multi_channels_select":
    case "multi_external_select": {
      const chosen = arr(e.initial_options).map(optionText).join(", ") || textOf(e.placeholder) || "Select";
      return `[ ${chosen} ▾ ]`;
    }
    case "overflow":
      return "[ … ]";
    case "datepicker":
      return `[ ${str(e.initial_date) || textOf(e.placeholder) || "date"} ]`;
    case "timepicker":
      return `[ ${str(e.initial_time) || textOf(e.placeholder) || "time"} ]`;
    case "checkboxes":
    case "radio_buttons": {
      const initial =
        e.type === "checkboxes" ? arr(e.initial_options) : e.initial_option ? [e.initial_option] : [];
      const picked = new Set(initial.map((o) => str(obj(o)?.value)));
      const [on, off] = e.type === "checkboxes" ? ["[x]", "[ ]"] : ["(•)", "( )"];
      return arr(e.options)
        .map((o) => `${picked.has(str(obj(o)?.value)) ? on : off} ${optionText(o)}`)
        .join("  ");
    }
    case "image":
      return `[image: ${str(e.alt_text)}]`;
    case "workflow_button":
      return `[ ${textOf(e.text)} ]`;
    default:
      return `[${str(e.type) || "element"}]`;
  }
}

/** What an input block shows before anyone types: the initial value or a blank. */
function inputValue(el: unknown): string {
  const e = obj(el);
  if (!e) return "____";
  if (
    e.type === "plain_text_input" ||
    e.type === "number_input" ||
    e.type === "email_text_input" ||
    e.type === "url_text_input"
  ) {
    return str(e.initial_value) || "____";
  }
  if (e.type === "checkboxes" || e.type === "radio_buttons") return elementText(e);
  const shown = elementText(e);
  // A select or picker with nothing chosen yet reads as a blank to fill.
  const empty =
    !e.initial_option &&
    !arr(e.initial_options).length &&
    !e.initial_date &&
    !e.initial_time &&
    !e.initial_user &&
    !e.initial_conversation &&
    !e.initial_channel;
  return empty ? "____" : shown;
}

function indentLines(text: string, prefix: string): string {
  return text
    .split("\n")
    .map((l) => prefix + l)
    .join("\n");
}

/** Section fields in two columns, as Slack lays them out. */
function fieldsText(fields: unknown[]): string {
  const cells = fields.map((f) => textOf(f).split("\n"));
  const left = cells.filter((_, i) => i % 2 === 0);
  const width = Math.max(0, ...left.flat().map((l) => [...l].length));
  const rows: string[] = [];
  for (let i = 0; i < cells.length; i += 2) {
    const a = cells[i] ?? [];
    const b = cells[i + 1];
    if (!b) {
      rows.push(...a);
      continue;
    }
    for (let line = 0; line < Math.max(a.length, b.length); line++) {
      const l = a[line] ?? "";
      const r = b[line] ?? "";
      rows.push(r ? `${l}${" ".repeat(width - [...l].length + FIELD_GAP)}${r}` : l);
    }
  }
  return rows.join("\n");
}

/** rich_text inline elements. */
function richInline(elements: unknown[]): string {
  return elements
    .map((el) => {
      const e = obj(el);
      if (!e) return "";
      const style = obj(e.style) ?? {};
      let out: string;
      switch (e.type) {
        case "text":
          out = emoji(str(e.text));
          break;
        case "link":
          out = e.text && e.text !== e.url ? `${str(e.text)} (${str(e.url)})` : str(e.url);
          break;
        case "user":
          out = `@${str(e.user_id)}`;
          break;
        case "usergroup":
          out = `@${str(e.usergroup_id)}`;
          break;
        case "channel":
          out = `#${str(e.channel_id)}`;
          break;
        case "broadcast":
          out = `@${str(e.range)}`;
          break;
        case "emoji":
          out = typeof e.unicode === "string" ? codepointsToString(e.unicode) : emoji(`:${str(e.name)}:`);
          break;
        case "date":
          out = str(e.fallback) || str(e.format);
          break;
        default:
          out = "";
      }
      if (style.code) out = `\`${out}\``;
      if (style.bold) out = `*${out}*`;
      if (style.italic) out = `_${out}_`;
      if (style.strike) out = `~${out}~`;
      return out;
    })
    .join("");
}

function codepointsToString(unicode: string): string {
  try {
    return String.fromCodePoint(...unicode.split("-").map((h) => Number.parseInt(h, 16)));
  } catch {
    return "";
  }
}

function richText(block: Obj): string {
  return arr(block.elements)
    .map((el) => {
      const e = obj(el);
      if (!e) return "";
      switch (e.type) {
        case "rich_text_section":
          return richInline(arr(e.elements));
        case "rich_text_preformatted":
          return indentLines(richInline(arr(e.elements)), "    ");
        case "rich_text_quote":
          return indentLines(richInline(arr(e.elements)), "> ");
        case "rich_text_list": {
          const indent = "  ".repeat(typeof e.indent === "number" ? e.indent : 0);
          const ordered = e.style === "ordered";
          const start = typeof e.offset === "number" ? e.offset : 0;
          return arr(e.elements)
            .map((item, i) => {
              const marker = ordered ? `${start + i + 1}.` : "•";
              return `${indent}${marker} ${richInline(arr(obj(item)?.elements))}`;
            })
            .join("\n");
        }
        default:
          return "";
      }
    })
    .join("\n");
}

function blockText(block: unknown): string {
  const b = obj(block);
  if (!b) return "";
  switch (b.type) {
    case "header": {
      const title = textOf(b.text).toUpperCase();
      return `${title}\n${"═".repeat([...title].length)}`;
    }
    case "section": {
      const parts: string[] = [];
      if (b.text) parts.push(textOf(b.text));
      if (arr(b.fields).length) parts.push(fieldsText(arr(b.fields)));
      if (b.accessory) parts.push(elementText(b.accessory));
      return parts.join("\n");
    }
    case "context":
      return arr(b.elements)
        .map((e) => (obj(e)?.type === "image" ? `[${str(obj(e)?.alt_text)}]` : textOf(e)))
        .join("  ");
    case "divider":
      return RULE;
    case "actions":
      return arr(b.elements).map(elementText).join(" ");
    case "input": {
      const optional = b.optional === true ? " (optional)" : "";
      const line = `${textOf(b.label)}${optional}: ${inputValue(b.element)}`;
      return b.hint ? `${line}\n  ${textOf(b.hint)}` : line;
    }
    case "image":
      return `[image: ${str(b.alt_text)}]`;
    case "rich_text":
      return richText(b);
    case "markdown":
      return str(b.text);
    case "file":
      return `[file: ${str(b.external_id)}]`;
    case "video":
      return `[video: ${textOf(b.title) || str(b.alt_text)}]`;
    default:
      return `[${str(b.type) || "block"}]`;
  }
}

/**
 * Block Kit as a person would read it in a terminal: one block after another, headers
 * upper-cased and underlined, buttons as `[ Approve ] [ Reject ]`, inputs as `Label: ____`.
 * With no blocks it renders `fallbackText` (the message's `text`).
 *
 * @example renderBlocksAsText([{ type: "divider" }]) // "────────…"
 */
export function renderBlocksAsText(blocks: readonly unknown[] | undefined, fallbackText?: string): string {
  if (!blocks || blocks.length === 0) return fallbackText === undefined ? "" : mrkdwnToText(fallbackText);
  return blocks
    .map(blockText)
    .filter((t) => t !== "")
    .join("\n");
}

/** A modal as text: its title, its blocks, then its close and submit buttons. */
export function renderViewAsText(view: unknown): string {
  const v = obj(view) ?? {};
  const out: string[] = [];
  const title = textOf(v.title);
  if (title) out.push(title, "━".repeat([...title].length));
  const body = renderBlocksAsText(arr(v.blocks));
  if (body) out.push(body);
  if (v.type !== "home") {
    const buttons = [`[ ${textOf(v.close) || "Cancel"} ]`];
    if (v.submit) buttons.push(`[ ${textOf(v.submit)} ]`);
    out.push("", buttons.join(" "));
  }
  return out.join("\n");
}
