-- KPI alert states, the KPI monitor switch, and the Cost Explorer cache.

-- CreateTable
CREATE TABLE "kpi_alert_states" (
    "key" TEXT NOT NULL,
    "breached" BOOLEAN NOT NULL DEFAULT false,
    "since" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "value" DOUBLE PRECISION,
    "threshold" DOUBLE PRECISION,
    "message" TEXT,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "kpi_alert_states_pkey" PRIMARY KEY ("key")
);

-- CreateTable
CREATE TABLE "kpi_monitor_state" (
    "env" TEXT NOT NULL,
    "enabled" BOOLEAN NOT NULL DEFAULT false,
    "changed_by" TEXT,
    "changed_at" TIMESTAMPTZ(3),
    "last_round_at" TIMESTAMPTZ(3),
    "pruned_at" TIMESTAMPTZ(3),

    CONSTRAINT "kpi_monitor_state_pkey" PRIMARY KEY ("env")
);

-- CreateTable
CREATE TABLE "cost_cache" (
    "key" TEXT NOT NULL,
    "day" TEXT NOT NULL,
    "fetched_at" TIMESTAMPTZ(3) NOT NULL,
    "value" JSONB NOT NULL,

    CONSTRAINT "cost_cache_pkey" PRIMARY KEY ("key")
);
