import { SETUP_SECTIONS } from "../jobs/host-script.js";
import type { FakeHost } from "../sandbox/FakeHost.js";

/**
 * How the rehearsal's app host (the in-process SSH server standing for the Lightsail instance)
 * answers the scripts Cutover runs on it, the way an Ubuntu host with the set-up applied would:
 * the set-up reports its sections, the check script finds everything in place, a deploy moves
 * `current` to the new release, Supervisor's programs are RUNNING, the app answers /health.
 * Nothing is executed: every command is recorded, and the report counts them.
 */
export interface HostBehaviour {
  /** the HTTP status the app answers on the host (a fault makes it unhealthy for a while) */
  health: () => string;
  /** how many deploy scripts ran */
  deploys(): number;
}

/** What the set-up script prints on a fresh host: its sections, then what it changed. */
export const SETUP_OUTPUT = `${SETUP_SECTIONS.map((s) => `::cutover:: section ${s}\n`).join("")}::cutover:: done changed=packages python gunicorn supervisor nginx tls\n`;

const scriptPath = (command: string) => /bash '([^']+)'$/.exec(command)?.[1] ?? "";

export function emulateUbuntuHost(
  host: FakeHost,
  opts: { appDir: string; services: string[] },
): HostBehaviour {
  const current = `${opts.appDir}/current`;
  let healthAnswer: () => string = () => "200";
  let deploys = 0;
  const scriptOf = (command: string) => host.text(scriptPath(command)) ?? "";

  host.on(/setup\.sh'$/, { stdout: SETUP_OUTPUT, chunkDelayMs: 5 });
  // the read-only check script: every `check NAME …` line passes
  host.on(/verify\.sh'$/, (command) => {
    const names = scriptOf(command)
      .split("\n")
      .map((l) => /^check (?:'([^']*)'|(\S+))/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => m[1] ?? m[2]);
    return { stdout: names.map((n) => `ok ${n}\n`).join("") };
  });
  host.on(/deploy\.sh'$/, (command) => {
    deploys++;
    const release = /^RELEASE='([^']+)'$/m.exec(scriptOf(command))?.[1];
    const previous = host.links.get(current)?.split("/").pop() ?? "none";
    host.links.set(current, `releases/${release}`);
    return {
      stdout: `::cutover:: previous ${previous}\n::cutover:: section fetch\n::cutover:: section env\n::cutover:: section install\n::cutover:: section migrate\n::cutover:: section switch\n::cutover:: section restart\n::cutover:: section prune\n::cutover:: deployed ${release}\n`,
      chunkDelayMs: 5,
    };
  });
  host.on(/switch\.sh'$/, (command) => {
    const release = /^RELEASE='([^']+)'$/m.exec(scriptOf(command))?.[1];
    host.links.set(current, `releases/${release}`);
    return { stdout: `::cutover:: switched to ${release}\n` };
  });
  host.on(/^curl .*\/health'?$/, () => ({ stdout: healthAnswer() }));
  host.on(/supervisorctl status/, {
    stdout: opts.services.map((s, i) => `${s} RUNNING pid ${10 + i}, uptime 0:00:09\n`).join(""),
  });
  // the error logs Supervisor writes: present, written a moment ago, no error lines
  host.on(/stat -c .*%s %Y.*\.log/, () => {
    const now = Math.floor(Date.now() / 1000);
    return { stdout: `${now}\n18432 ${now - 40}\n0\n` };
  });
  host.on(/celery .*inspect ping/, {
    stdout: "->  celery@gogojap-api: OK\n        pong\n\n1 node online.\n",
  });

  return {
    get health() {
      return healthAnswer;
    },
    set health(fn: () => string) {
      healthAnswer = fn;
    },
    deploys: () => deploys,
  };
}
