import type { RecordedCall } from "../sandbox/FakeSlack.js";
import { ACTION } from "../views/ids.js";
import { renderBlocksAsText, renderViewAsText } from "../views/text.js";

/**
 * The channel as it unfolds, in a terminal: what each person types, what the bot posts (Block
 * Kit rendered as text), replies only the asker sees, modals as they open. On a TTY a running
 * run's message (with its progress bars) is redrawn in place at the bottom until it ends; in a
 * log (CI, a pipe) it is printed once, when it ends.
 */
export interface ChannelPrinter {
  /** a person's action: `» Mance (operator): /migrate run prepare` */
  person(name: string, action: string): void;
  /** a line from the rehearsal itself (world start-up, time compressed, …) */
  note(text: string): void;
  /** every call FakeSlack records */
  onCall(call: RecordedCall): void;
  /** prints whatever is still live, once, as it now reads */
  flush(): void;
}

const DIM = (s: string, on: boolean) => (on ? `\x1b[2m${s}\x1b[0m` : s);
const BOLD = (s: string, on: boolean) => (on ? `\x1b[1m${s}\x1b[0m` : s);

function indent(text: string, prefix: string): string {
  return text
    .split("\n")
    .map((l) => `${prefix}${l}`)
    .join("\n");
}

/** A printer that writes nothing (`--quiet`). */
export function silentPrinter(): ChannelPrinter {
  return { person() {}, note() {}, onCall() {}, flush() {} };
}

export function channelPrinter(opts: {
  out: NodeJS.WriteStream;
  channel: string;
  names: Record<string, string>;
}): ChannelPrinter {
  const { out } = opts;
  const tty = Boolean(out.isTTY);
  const width = () => Math.max(40, (out.columns || 100) - 1);
  // the live area must fit on the screen, or moving the cursor back up to redraw it falls short
  const height = () => Math.max(5, (out.rows || 40) - 2);
  const named = (text: string) =>
    Object.entries(opts.names).reduce((t, [id, name]) => t.split(`@${id}`).join(`@${name}`), text);
  /** live run messages by ts, in posting order */
  const live = new Map<string, string>();
  /** what was last printed for a finished message, by key */
  const finished = new Map<string, string>();
  let liveLines = 0;

  const clip = (line: string) => {
    const chars = [...line];
    return chars.length > width() ? `${chars.slice(0, width() - 1).join("")}…` : line;
  };
  const liveText = () => {
    const lines = [...live.values()].join("\n").split("\n").map(clip);
    return lines.length > height() ? [lines[0]!, "  …", ...lines.slice(-(height() - 2))] : lines;
  };

  /** writes permanent text above the live area (redrawing the live area under it on a TTY) */
  const print = (text: string) => {
    if (!tty) {
      out.write(`${text}\n`);
      return;
    }
    const lines = liveText();
    out.write(
      `${liveLines ? `\x1b[${liveLines}A\r\x1b[J` : ""}${text}\n${lines.length ? `${lines.join("\n")}\n` : ""}`,
    );
    liveLines = lines.length;
  };
  const redraw = () => {
    if (!tty) return;
    const lines = liveText();
    out.write(
      `${liveLines ? `\x1b[${liveLines}A\r\x1b[J` : ""}${lines.length ? `${lines.join("\n")}\n` : ""}`,
    );
    liveLines = lines.length;
  };

  const render = (args: Record<string, unknown>) =>
    named(renderBlocksAsText(args.blocks as unknown[] | undefined, String(args.text ?? "")));
  /** a run's message is known by its target ("Run prepare"), whatever its status icon says */
  const keyOf = (args: Record<string, unknown>) =>
    String(args.text ?? "")
      .replace(/^\S+\s+/, "")
      .replace(/:[^:]*$/, "");
  const isLiveRun = (args: Record<string, unknown>) =>
    JSON.stringify(args.blocks ?? []).includes(ACTION.cancelRun);
  const bot = (text: string) => `${BOLD("cutover", tty)} ${DIM("(bot)", tty)}\n${indent(text, "  ")}`;

  return {
    person(name, action) {
      print(`\n» ${BOLD(name, tty)}: ${action}`);
    },
    note(text) {
      print(DIM(`· ${text}`, tty));
    },
    onCall(call) {
      const a = call.args;
      if (call.error) return;
      switch (call.method) {
        case "chat.postMessage": {
          if (a.channel !== opts.channel) return;
          const text = render(a);
          if (a.thread_ts) {
            print(indent(`↳ ${text}`, "    "));
            return;
          }
          if (isLiveRun(a)) {
            live.set(keyOf(a), bot(text));
            redraw();
          } else print(bot(text));
          return;
        }
        case "chat.update": {
          const text = render(a);
          const key = keyOf(a);
          if (isLiveRun(a)) {
            live.set(key, bot(text));
            redraw();
          } else if (finished.get(key) !== text) {
            // a run's last state, printed once (a later identical edit adds nothing)
            finished.set(key, text);
            live.delete(key);
            print(bot(text));
          }
          return;
        }
        case "files.completeUploadExternal": {
          // a message carried by files (the daily digest with its charts)
          if (a.channel_id !== opts.channel) return;
          const files = (
            Array.isArray(a.files) ? (a.files as Array<{ id?: string; title?: string }>) : []
          ).map((f) => f.title ?? f.id ?? "file");
          print(bot(`${render(a)}${files.length ? `\n📎 ${files.join(" · ")}` : ""}`));
          return;
        }
        case "response_url": {
          const text = named(String(a.text ?? ""));
          if (!text) return;
          const visibility = a.response_type === "in_channel" ? "" : DIM(" (only you can see this)", tty);
          print(indent(`${BOLD("cutover", tty)}${visibility}\n${indent(render(a), "  ")}`, "  "));
          return;
        }
        case "views.open":
        case "views.push": {
          let view: unknown = a.view;
          if (typeof view === "string") {
            try {
              view = JSON.parse(view);
            } catch {
              return;
            }
          }
          print(indent(`┌ modal\n${indent(named(renderViewAsText(view)), "│ ")}\n└`, "  "));
          return;
        }
        default:
          return;
      }
    },
    flush() {
      if (!tty) for (const text of live.values()) out.write(`${text}\n`);
      live.clear();
      liveLines = 0;
    },
  };
}
