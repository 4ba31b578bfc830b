/**
 * What Slack refuses in a message or a modal, for the fake Slack (src/sandbox/FakeSlack.ts): each
 * check answers Slack's error name (`invalid_blocks`, `msg_too_long`, `invalid_arguments`, …)
 * and a `[ERROR] … [json-pointer:/…]` line as Slack puts in `response_metadata.messages`, so a
 * test or a rehearsal fails on a payload that real Slack would reject and the person never sees.
 *
 * The limits come from Slack's reference pages and the TSDoc of `@slack/types` (3.2, in
 * node_modules: `dist/block-kit/*.d.ts`, `dist/views.d.ts`), which say the same:
 * - blocks: https://docs.slack.dev/reference/block-kit/blocks ("up to 50 blocks in each message,
 *   and 100 blocks in modals or Home tabs"); `block_id` ≤ 255, unique in a message or view
 *   (blocks.d.ts `Block.block_id`).
 * - section: https://docs.slack.dev/reference/block-kit/blocks/section-block — `text` 1–3,000,
 *   `fields` ≤ 10 items of ≤ 2,000 each (blocks.d.ts `SectionBlock`).
 * - header: https://docs.slack.dev/reference/block-kit/blocks/header-block — plain_text ≤ 150.
 * - context: https://docs.slack.dev/reference/block-kit/blocks/context-block — ≤ 10 elements.
 * - actions: https://docs.slack.dev/reference/block-kit/blocks/actions-block — ≤ 25 elements;
 *   `action_id` ≤ 255, unique in its block (extensions.d.ts `Actionable.action_id`).
 * - input: https://docs.slack.dev/reference/block-kit/blocks/input-block — `label` and `hint`
 *   plain_text ≤ 2,000.
 * - button: https://docs.slack.dev/reference/block-kit/block-elements/button-element — `text`
 *   plain_text ≤ 75, `value` ≤ 2,000, `url` ≤ 3,000, `accessibility_label` ≤ 75.
 * - plain_text_input: https://docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element
 *   — `placeholder` ≤ 150 (extensions.d.ts `Placeholdable`), `min_length` ≤ 3,000, and an
 *   `initial_value` no longer than `max_length` (the input would refuse its own value on submit).
 * - confirm: https://docs.slack.dev/reference/block-kit/composition-objects/confirmation-dialog-object
 *   — `title` plain_text ≤ 100, `text` ≤ 300, `confirm`/`deny` plain_text ≤ 30.
 * - text object: https://docs.slack.dev/reference/block-kit/composition-objects/text-object —
 *   1–3,000 characters (composition-objects.d.ts `PlainTextElement`, `MrkdwnElement`).
 * - modal: https://docs.slack.dev/reference/views/modal-views — `title`, `submit`, `close`
 *   plain_text ≤ 24, ≤ 100 blocks, `private_metadata` ≤ 3,000, `callback_id` ≤ 255, `submit`
 *   required with an input block (views.d.ts `ModalView`).
 * - chat.postMessage: https://docs.slack.dev/reference/methods/chat.postMessage — `text` is
 *   truncated past 40,000 characters and refused with `msg_too_long`; bad blocks are
 *   `invalid_blocks`. Slack itself only warns (in the SDK's log) when blocks come without a
 *   top-level `text`, but the notification and the screen reader then say nothing: the fake
 *   refuses that with `no_text`, stricter than Slack on purpose (DESIGN.md: every payload within
 *   Slack's documented limits, and readable where blocks are not shown).
 *
 * Characters are counted as Unicode code points, as a person counts them; code that clips with
 * `String.length` (UTF-16 units) is never longer than that.
 */

/** A refusal: Slack's error name and the line Slack puts in `response_metadata.messages`. */
export interface SlackRefusal {
  error: string;
  message: string;
}

/** The Block Kit limits the checks apply (see the module comment for where each comes from). */
export const SLACK_LIMITS = {
  messageBlocks: 50,
  viewBlocks: 100,
  messageText: 40_000,
  textObject: 3_000,
  sectionText: 3_000,
  sectionFields: 10,
  sectionField: 2_000,
  headerText: 150,
  contextElements: 10,
  actionsElements: 25,
  buttonText: 75,
  buttonValue: 2_000,
  buttonUrl: 3_000,
  accessibilityLabel: 75,
  id: 255,
  confirmTitle: 100,
  confirmText: 300,
  confirmButton: 30,
  viewTitle: 24,
  privateMetadata: 3_000,
  inputLabel: 2_000,
  inputHint: 2_000,
  placeholder: 150,
  inputLength: 3_000,
  optionText: 75,
  optionValue: 150,
  selectOptions: 100,
  overflowOptions: 5,
  imageUrl: 3_000,
  altText: 2_000,
} as const;

const BLOCK_TYPES = new Set([
  "section",
  "header",
  "context",
  "actions",
  "divider",
  "input",
  "image",
  "rich_text",
  "markdown",
  "file",
  "video",
]);

class Refused extends Error {
  constructor(
    readonly error: string,
    readonly problem: string,
    readonly pointer: string,
  ) {
    super(problem);
  }
}

const chars = (s: string) => [...s].length;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Checks a message's `text` and `blocks` as chat.postMessage, chat.update, chat.postEphemeral and
 * a response_url reply do. Returns the refusal, or undefined when Slack would take it.
 * `needText: false` for a file share's blocks (files.completeUploadExternal has no `text`: its
 * `initial_comment` replaces the blocks).
 */
export function checkMessage(
  a: { text?: unknown; blocks?: unknown },
  opts: { needText?: boolean } = {},
): SlackRefusal | undefined {
  return guard(() => {
    const text = typeof a.text === "string" ? a.text : undefined;
    if (text !== undefined && chars(text) > SLACK_LIMITS.messageText)
      throw new Refused(
        "msg_too_long",
        `text must be at most ${SLACK_LIMITS.messageText} characters`,
        "/text",
      );
    if (a.blocks === undefined) return;
    if (!Array.isArray(a.blocks))
      throw new Refused("invalid_blocks_format", "blocks must be an array", "/blocks");
    if (opts.needText !== false && a.blocks.length > 0 && !text?.trim())
      throw new Refused(
        "no_text",
        "blocks need a top-level text for notifications and screen readers",
        "/text",
      );
    checkBlocks(a.blocks, SLACK_LIMITS.messageBlocks, "/blocks", "invalid_blocks");
  });
}

/** Checks a modal as views.open, views.push and views.update do (Slack: `invalid_arguments`). */
export function checkView(view: Obj): SlackRefusal | undefined {
  return guard(() => {
    const e = "invalid_arguments";
    if (view.type !== "modal" && view.type !== "home")
      throw new Refused(e, "type must be modal or home", "/view/type");
    if (view.type === "modal") {
      plainText(view.title, SLACK_LIMITS.viewTitle, "/view/title", e, true);
      plainText(view.submit, SLACK_LIMITS.viewTitle, "/view/submit", e, false);
      plainText(view.close, SLACK_LIMITS.viewTitle, "/view/close", e, false);
    }
    maxString(view.private_metadata, SLACK_LIMITS.privateMetadata, "/view/private_metadata", e);
    maxString(view.callback_id, SLACK_LIMITS.id, "/view/callback_id", e);
    maxString(view.external_id, SLACK_LIMITS.id, "/view/external_id", e);
    if (!Array.isArray(view.blocks)) throw new Refused(e, "blocks must be an array", "/view/blocks");
    checkBlocks(view.blocks, SLACK_LIMITS.viewBlocks, "/view/blocks", e);
    if (view.type === "modal" && view.blocks.some((b) => isObj(b) && b.type === "input") && !view.submit)
      throw new Refused(e, "a modal with an input block needs submit", "/view/submit");
  });
}

function guard(fn: () => void): SlackRefusal | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!(err instanceof Refused)) throw err;
    return { error: err.error, message: `[ERROR] ${err.problem} [json-pointer:${err.pointer}]` };
  }
}

function checkBlocks(blocks: unknown[], max: number, at: string, e: string): void {
  if (blocks.length > max) throw new Refused(e, `no more than ${max} items allowed`, at);
  const blockIds = new Set<string>();
  blocks.forEach((block, i) => {
    const p = `${at}/${i}`;
    if (!isObj(block) || typeof block.type !== "string") throw new Refused(e, "a block needs a type", p);
    if (!BLOCK_TYPES.has(block.type)) throw new Refused(e, `unsupported type: ${block.type}`, `${p}/type`);
    if (block.block_id !== undefined) {
      const id = maxString(block.block_id, SLACK_LIMITS.id, `${p}/block_id`, e);
      if (blockIds.has(id)) throw new Refused(e, `duplicate block_id ${id}`, `${p}/block_id`);
      blockIds.add(id);
    }
    checkBlock(block, p, e);
  });
}

function checkBlock(b: Obj, p: string, e: string): void {
  switch (b.type) {
    case "section": {
      if (b.text === undefined && b.fields === undefined)
        throw new Refused(e, "a section needs text or fields", p);
      if (b.text !== undefined) textObject(b.text, SLACK_LIMITS.sectionText, `${p}/text`, e);
      if (b.fields !== undefined) {
        if (!Array.isArray(b.fields) || b.fields.length === 0)
          throw new Refused(e, "fields must be a non-empty array", `${p}/fields`);
        if (b.fields.length > SLACK_LIMITS.sectionFields)
          throw new Refused(e, `no more than ${SLACK_LIMITS.sectionFields} items allowed`, `${p}/fields`);
        for (const [i, f] of b.fields.entries())
          textObject(f, SLACK_LIMITS.sectionField, `${p}/fields/${i}`, e);
      }
      if (b.accessory !== undefined) element(b.accessory, `${p}/accessory`, e);
      return;
    }
    case "header":
      plainText(b.text, SLACK_LIMITS.headerText, `${p}/text`, e, true);
      return;
    case "context": {
      const els = b.elements;
      if (!Array.isArray(els) || els.length === 0)
        throw new Refused(e, "elements must be a non-empty array", `${p}/elements`);
      if (els.length > SLACK_LIMITS.contextElements)
        throw new Refused(e, `no more than ${SLACK_LIMITS.contextElements} items allowed`, `${p}/elements`);
      els.forEach((el, i) => {
        const q = `${p}/elements/${i}`;
        if (isObj(el) && el.type === "image") image(el, q, e);
        else textObject(el, SLACK_LIMITS.textObject, q, e);
      });
      return;
    }
    case "actions": {
      const els = b.elements;
      if (!Array.isArray(els) || els.length === 0)
        throw new Refused(e, "elements must be a non-empty array", `${p}/elements`);
      if (els.length > SLACK_LIMITS.actionsElements)
        throw new Refused(e, `no more than ${SLACK_LIMITS.actionsElements} items allowed`, `${p}/elements`);
      const actionIds = new Set<string>();
      els.forEach((el, i) => {
        const q = `${p}/elements/${i}`;
        element(el, q, e);
        const id = (el as Obj).action_id;
        if (typeof id === "string") {
          if (actionIds.has(id)) throw new Refused(e, `duplicate action_id ${id}`, `${q}/action_id`);
          actionIds.add(id);
        }
      });
      return;
    }
    case "input":
      plainText(b.label, SLACK_LIMITS.inputLabel, `${p}/label`, e, true);
      plainText(b.hint, SLACK_LIMITS.inputHint, `${p}/hint`, e, false);
      if (!isObj(b.element)) throw new Refused(e, "an input needs an element", `${p}/element`);
      element(b.element, `${p}/element`, e);
      return;
    case "image":
      image(b, p, e);
      if (b.title !== undefined) plainText(b.title, 2_000, `${p}/title`, e, true);
      return;
    default:
      return;
  }
}

function element(el: unknown, p: string, e: string): void {
  if (!isObj(el) || typeof el.type !== "string") throw new Refused(e, "an element needs a type", p);
  maxString(el.action_id, SLACK_LIMITS.id, `${p}/action_id`, e);
  if (el.confirm !== undefined) confirm(el.confirm, `${p}/confirm`, e);
  switch (el.type) {
    case "button":
      plainText(el.text, SLACK_LIMITS.buttonText, `${p}/text`, e, true);
      maxString(el.value, SLACK_LIMITS.buttonValue, `${p}/value`, e);
      maxString(el.url, SLACK_LIMITS.buttonUrl, `${p}/url`, e);
      maxString(el.accessibility_label, SLACK_LIMITS.accessibilityLabel, `${p}/accessibility_label`, e);
      if (el.style !== undefined && el.style !== "primary" && el.style !== "danger")
        throw new Refused(e, "style must be primary or danger", `${p}/style`);
      return;
    case "plain_text_input": {
      plainText(el.placeholder, SLACK_LIMITS.placeholder, `${p}/placeholder`, e, false);
      const max = lengthBound(el.max_length, `${p}/max_length`, e);
      const min = lengthBound(el.min_length, `${p}/min_length`, e);
      if (min !== undefined && max !== undefined && min > max)
        throw new Refused(e, "min_length must not exceed max_length", `${p}/min_length`);
      maxString(el.initial_value, max ?? SLACK_LIMITS.inputLength, `${p}/initial_value`, e);
      return;
    }
    case "static_select":
    case "multi_static_select":
    case "overflow":
    case "radio_buttons":
    case "checkboxes": {
      if (el.type !== "overflow" && el.type !== "radio_buttons" && el.type !== "checkboxes")
        plainText(el.placeholder, SLACK_LIMITS.placeholder, `${p}/placeholder`, e, false);
      const options = el.options;
      if (options === undefined) return;
      const most = el.type === "overflow" ? SLACK_LIMITS.overflowOptions : SLACK_LIMITS.selectOptions;
      if (!Array.isArray(options) || options.length === 0)
        throw new Refused(e, "options must be a non-empty array", `${p}/options`);
      if (options.length > most) throw new Refused(e, `no more than ${most} items allowed`, `${p}/options`);
      options.forEach((o, i) => {
        const q = `${p}/options/${i}`;
        if (!isObj(o)) throw new Refused(e, "an option must be an object", q);
        textObject(o.text, SLACK_LIMITS.optionText, `${q}/text`, e);
        maxString(o.value, SLACK_LIMITS.optionValue, `${q}/value`, e);
      });
      return;
    }
    default:
      plainText(el.placeholder, SLACK_LIMITS.placeholder, `${p}/placeholder`, e, false);
  }
}

function confirm(c: unknown, p: string, e: string): void {
  if (!isObj(c)) throw new Refused(e, "confirm must be an object", p);
  plainText(c.title, SLACK_LIMITS.confirmTitle, `${p}/title`, e, true);
  textObject(c.text, SLACK_LIMITS.confirmText, `${p}/text`, e);
  plainText(c.confirm, SLACK_LIMITS.confirmButton, `${p}/confirm`, e, true);
  plainText(c.deny, SLACK_LIMITS.confirmButton, `${p}/deny`, e, true);
}

function image(el: Obj, p: string, e: string): void {
  if (el.image_url === undefined && el.slack_file === undefined)
    throw new Refused(e, "an image needs image_url or slack_file", p);
  maxString(el.image_url, SLACK_LIMITS.imageUrl, `${p}/image_url`, e);
  if (typeof el.alt_text !== "string" || el.alt_text === "")
    throw new Refused(e, "an image needs alt_text", `${p}/alt_text`);
  maxString(el.alt_text, SLACK_LIMITS.altText, `${p}/alt_text`, e);
}

/** A text object (plain_text or mrkdwn) of 1 to `max` characters. */
function textObject(t: unknown, max: number, p: string, e: string): void {
  if (!isObj(t) || (t.type !== "plain_text" && t.type !== "mrkdwn"))
    throw new Refused(e, "must be a text object (plain_text or mrkdwn)", p);
  textLength(t, max, p, e);
}

/** A plain_text object where Slack takes only plain_text; `required` when the field must be there. */
function plainText(t: unknown, max: number, p: string, e: string, required: boolean): void {
  if (t === undefined && !required) return;
  if (!isObj(t) || t.type !== "plain_text") throw new Refused(e, "must be a plain_text text object", p);
  textLength(t, max, p, e);
}

function textLength(t: Obj, max: number, p: string, e: string): void {
  if (typeof t.text !== "string" || t.text.length === 0)
    throw new Refused(e, "must be at least 1 character", `${p}/text`);
  if (chars(t.text) > max) throw new Refused(e, `must be at most ${max} characters`, `${p}/text`);
}

function maxString(v: unknown, max: number, p: string, e: string): string {
  if (v === undefined) return "";
  if (typeof v !== "string") throw new Refused(e, "must be a string", p);
  if (chars(v) > max) throw new Refused(e, `must be at most ${max} characters`, p);
  return v;
}

function lengthBound(v: unknown, p: string, e: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > SLACK_LIMITS.inputLength)
    throw new Refused(e, `must be a whole number from 0 to ${SLACK_LIMITS.inputLength}`, p);
  return v;
}
