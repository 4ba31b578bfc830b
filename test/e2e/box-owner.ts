/** Starts a host box and waits: the test SIGKILLs this process to stand for a crashed test run. */
import { HostBox } from "../../src/sandbox/host-box.js";
import { generateEd25519 } from "../../src/sandbox/ssh-keys.js";

const box = await HostBox.start({ authorizedKey: generateEd25519().public });
process.stdout.write(`${JSON.stringify({ id: box.id, address: box.address })}\n`);
setInterval(() => undefined, 60_000);
