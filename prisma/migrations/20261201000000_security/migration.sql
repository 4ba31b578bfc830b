-- One live request per environment and kind, held by the database: `live_key` is
-- "<action>:<environment>" while a request is pending or approved, NULL once it is decided
-- otherwise, used, void or expired (a unique index lets any number of NULLs through).
ALTER TABLE "approvals" ADD COLUMN "live_key" TEXT;

-- Requests already live when this runs: the newest of each kind and environment stays live,
-- the rest are void (they are the spares a race left behind).
UPDATE "approvals" a SET "status" = 'void'
 WHERE a."status" IN ('pending', 'approved')
   AND a."id" <> (SELECT b."id" FROM "approvals" b
                   WHERE b."action" = a."action" AND b."status" IN ('pending', 'approved')
                     AND b."change"->>'environment' IS NOT DISTINCT FROM a."change"->>'environment'
                   ORDER BY b."created_at" DESC, b."id" DESC LIMIT 1);
UPDATE "approvals" SET "live_key" = "action" || ':' || COALESCE("change"->>'environment', '')
 WHERE "status" IN ('pending', 'approved');

-- CreateIndex
CREATE UNIQUE INDEX "approvals_live_key_key" ON "approvals"("live_key");

-- Modals the bot opened: a view_submission is read only for a view the bot opened for that
-- person and that request (Slack sends the view's id and hash back).
-- CreateTable
CREATE TABLE "slack_views" (
    "view_id" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "callback_id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "request" TEXT NOT NULL,
    "opened_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "used_at" TIMESTAMPTZ(3),

    CONSTRAINT "slack_views_pkey" PRIMARY KEY ("view_id")
);
