import type { Block, KnownBlock } from "@slack/types";
import type { WebClient } from "@slack/web-api";
import { pngSize } from "../charts/png.js";

/**
 * Uploads images with Slack's current flow (files.getUploadURLExternal → POST the bytes to the
 * upload URL → files.completeUploadExternal), through WebClient's `filesUploadV2`, which does
 * exactly those three calls. The deprecated files.upload is never used.
 */

/** One PNG to upload. */
export interface PngFile {
  /** "cost-2026-11-18.png" */
  filename: string;
  /** shown above the image in Slack */
  title: string;
  png: Buffer;
  /** read out by screen readers */
  altText?: string;
}

/** Where the files go, and the message they are shared in. */
export interface FileShare {
  channel: string;
  /** reply in this thread instead of the channel */
  threadTs?: string | undefined;
  /** plain text above the files (Slack ignores `blocks` when this is set) */
  initialComment?: string | undefined;
  /** Block Kit for the message the files are shared in (used when there is no initialComment) */
  blocks?: Array<KnownBlock | Block> | undefined;
}

/** The file ids Slack gave the uploads, in the order given. */
export interface UploadResult {
  fileIds: string[];
}

/**
 * The port the digest uses: share one or more PNGs in one message.
 *
 * @example await uploader.uploadPngs({ channel: "C0123", blocks }, [{ filename: "cost.png", title: "Cost", png }]);
 */
export interface ImageUploader {
  uploadPngs(share: FileShare, files: readonly PngFile[]): Promise<UploadResult>;
}

/** Refuses bytes that are not a PNG before anything is sent (a chart bug must not become a broken file in Slack). */
function assertPng(file: PngFile): void {
  if (!pngSize(file.png)) throw new Error(`${file.filename} is not a PNG image`);
}

/**
 * Shares PNGs in one message through `client.filesUploadV2`. All files go in one
 * files.completeUploadExternal call, so they land in one message together with `blocks`.
 */
export async function uploadPngs(
  client: WebClient,
  share: FileShare,
  files: readonly PngFile[],
): Promise<UploadResult> {
  if (files.length === 0) return { fileIds: [] };
  files.forEach(assertPng);
  const where = {
    channel_id: share.channel,
    ...(share.threadTs ? { thread_ts: share.threadTs } : {}),
    ...(share.initialComment ? { initial_comment: share.initialComment } : {}),
    ...(share.blocks && !share.initialComment ? { blocks: share.blocks } : {}),
  };
  const res = await client.filesUploadV2({
    ...where,
    file_uploads: files.map((f) => ({
      file: f.png,
      filename: f.filename,
      title: f.title,
      ...(f.altText ? { alt_text: f.altText } : {}),
    })),
  } as Parameters<WebClient["filesUploadV2"]>[0]);
  // One completion per distinct destination; each lists the files it completed.
  const completions = (res.files ?? []) as Array<{ files?: Array<{ id?: string }> }>;
  const fileIds = completions.flatMap((c) => (c.files ?? []).map((f) => f.id ?? "")).filter(Boolean);
  return { fileIds };
}

/** Shares one PNG. */
export async function uploadPng(client: WebClient, share: FileShare, file: PngFile): Promise<string> {
  const { fileIds } = await uploadPngs(client, share, [file]);
  return fileIds[0] ?? "";
}

/** The {@link ImageUploader} port over a WebClient (Bolt's `app.client`). */
export function slackImageUploader(client: WebClient): ImageUploader {
  return { uploadPngs: (share, files) => uploadPngs(client, share, files) };
}

/**
 * What went wrong with a Slack call, in words for the channel and the log: Slack's error code
 * (`missing_scope`, with the scope it needs) or the HTTP failure. Never the token.
 */
export function slackErrorText(err: unknown): string {
  const e = err as { code?: string; message?: string; data?: { error?: string; needed?: string } };
  if (e?.data?.error) {
    const needed = e.data.needed
      ? ` (the app needs the ${e.data.needed} scope: reinstall it from manifest.yml)`
      : "";
    return `Slack refused: ${e.data.error}${needed}`;
  }
  if (typeof e?.code === "string" && e.code.startsWith("slack_"))
    return `Slack call failed: ${e.message ?? e.code}`;
  return e instanceof Error ? e.message.replace(/xox[abposre]-[A-Za-z0-9-]+/g, "[token]") : String(err);
}
