import type { KnownBlock } from "@slack/types";
import type { DifferenceKind, StorageVerifyReport } from "../jobs/steps/storage/verify.js";
import { TARGET_ONLY_RULE } from "../jobs/steps/storage/wording.js";
import { formatBytes } from "../text/units.js";
import { context, divider, esc, formatDuration, header, type Reply, section } from "./blocks.js";

const KIND_LABEL: Record<DifferenceKind, string> = {
  missing: "missing on the target",
  extra: "only on the target",
  size: "different size",
  content: "different content",
  metadata: "different headers or metadata",
};

const n = (v: number) => v.toLocaleString("en-US");
const objs = (v: number) => `${n(v)} object${v === 1 ? "" : "s"}`;

/**
 * The Slack report of `storage.verify` (posted in the run's thread, or as the reply to
 * `/migrate verify storage`): counts and bytes on each side, how content was proven, and the
 * differences, listed by key.
 */
export function storageVerifyView(r: StorageVerifyReport, opts: { maxListed?: number } = {}): Reply {
  const max = opts.maxListed ?? 20;
  // objects only on the target are listed but are not differences (TARGET_ONLY_RULE)
  const total = Object.values(r.differences).reduce((a, b) => a + b, 0) - r.differences.extra;
  const icon = r.ok ? "✅" : "❌";
  const title = r.ok
    ? `${icon} Storage verified: ${objs(r.matched)} identical`
    : `${icon} Storage differs: ${n(total)} difference${total === 1 ? "" : "s"}`;
  const how = [
    r.checkedBy.etag ? `${n(r.checkedBy.etag)} by MD5 ETag` : "",
    r.checkedBy.storedChecksum ? `${n(r.checkedBy.storedChecksum)} by the CRC32 S3 stored` : "",
    r.checkedBy.hashed ? `${n(r.checkedBy.hashed)} by hashing the bytes` : "",
  ].filter(Boolean);
  const blocks: KnownBlock[] = [
    header(title.replace(/^\S+ /, "")),
    section(
      [
        `*Source* ${esc(r.source.label)}: ${objs(r.source.objects)}, ${formatBytes(r.source.bytes)}`,
        `*Target* ${esc(r.target.label)}: ${objs(r.target.objects)}, ${formatBytes(r.target.bytes)}`,
        `*Identical* ${objs(r.matched)}, ${formatBytes(r.matchedBytes)}${r.metadataChecked ? " (content, headers and metadata)" : " (content)"}`,
        how.length ? `*Content proven* ${how.join(", ")}` : "",
      ]
        .filter(Boolean)
        .join("\n"),
    ),
  ];
  if (r.differences.extra > 0)
    blocks.push(
      section(
        `*Only on the target* ${objs(r.differences.extra)}: ${TARGET_ONLY_RULE}.${
          r.ok
            ? `\n${r.listed
                .filter((d) => d.kind === "extra")
                .slice(0, max)
                .map((d) => `• \`${esc(d.key)}\``)
                .join("\n")}`
            : ""
        }`,
      ),
    );
  if (!r.ok) {
    const counts = (Object.keys(r.differences) as DifferenceKind[])
      .filter((k) => r.differences[k] > 0)
      .map((k) => `• ${n(r.differences[k])} ${KIND_LABEL[k]}`)
      .join("\n");
    blocks.push(divider(), section(`*Differences*\n${counts}`));
    const shown = r.listed
      .slice(0, max)
      .map((d) => `• \`${esc(d.key)}\` — ${KIND_LABEL[d.kind]}: ${esc(d.detail)}`);
    if (shown.length > 0) {
      const more = total - shown.length;
      blocks.push(
        section(
          `${shown.join("\n")}${more > 0 ? `\n… and ${n(more)} more (full list in the report file)` : ""}`,
        ),
      );
    }
  }
  blocks.push(
    context(
      `checked in ${formatDuration(r.seconds * 1000)}${r.vanished ? ` · ${n(r.vanished)} deleted at the source while checking` : ""} · ${r.finishedAt || "now"}`,
    ),
  );
  return {
    text: r.ok
      ? `${icon} Storage verified: ${n(r.matched)} of ${objs(r.source.objects)} identical (${formatBytes(r.matchedBytes)})`
      : `${icon} Storage differs: ${n(total)} difference${total === 1 ? "" : "s"} between ${objs(r.source.objects)} on the source and ${objs(r.target.objects)} on the target`,
    blocks,
  };
}
