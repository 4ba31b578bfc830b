import type { AccessConfig } from "../config/schema.js";

/** Returns the members of a Slack user group (S…); the Slack adapter asks usergroups.users.list. */
export type GroupMembers = (groupId: string) => Promise<readonly string[]>;

/**
 * The migration file's access rules. User-group membership is looked up through Slack and
 * cached for a minute, so a busy night does not hit Slack's rate limits; where a decision is
 * taken (an approval, a rollback) the caller asks `{ fresh: true }`, so someone just removed
 * from the group cannot decide.
 */
export class AccessControl {
  private readonly cache = new Map<string, { at: number; members: readonly string[] }>();

  constructor(
    private readonly access: AccessConfig,
    private readonly groupMembers: GroupMembers,
    private readonly ttlMs = 60_000,
  ) {}

  get localOperator(): string {
    return this.access.localOperator;
  }

  channelAllowed(channel: string | null): boolean {
    return channel !== null && this.access.channels.includes(channel);
  }

  isOperator(user: string, opts: { fresh?: boolean } = {}): Promise<boolean> {
    return this.isIn(user, this.access.operators, opts.fresh ?? false);
  }

  isApprover(user: string, opts: { fresh?: boolean } = {}): Promise<boolean> {
    return this.isIn(user, this.access.approvers, opts.fresh ?? false);
  }

  private async isIn(user: string, list: readonly string[], fresh: boolean): Promise<boolean> {
    if (list.includes(user)) return true;
    for (const id of list) {
      if (!id.startsWith("S")) continue;
      if ((await this.members(id, fresh)).includes(user)) return true;
    }
    return false;
  }

  private async members(groupId: string, fresh: boolean): Promise<readonly string[]> {
    const hit = this.cache.get(groupId);
    if (!fresh && hit && Date.now() - hit.at < this.ttlMs) return hit.members;
    const members = await this.groupMembers(groupId);
    this.cache.set(groupId, { at: Date.now(), members });
    return members;
  }
}
