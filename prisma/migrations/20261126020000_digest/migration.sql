-- CreateTable
CREATE TABLE "digests" (
    "id" UUID NOT NULL,
    "env" TEXT NOT NULL,
    "day" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'claimed',
    "claimed_by" TEXT NOT NULL,
    "claimed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "posted_at" TIMESTAMPTZ(3),
    "channel" TEXT,
    "message_ts" TEXT,
    "file_ids" JSONB,
    "error" TEXT,

    CONSTRAINT "digests_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "digests_env_day_key" ON "digests"("env", "day");
