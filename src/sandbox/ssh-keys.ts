import ssh2 from "ssh2";

/**
 * An ed25519 key pair in OpenSSH format that ssh2 itself can read back. ssh2's generator strips
 * leading zero bytes from the public key, so about 1 pair in 256 cannot be parsed again
 * ("Malformed OpenSSH private key", mscdex/ssh2#1513); such a pair is drawn again.
 */
export function generateEd25519(): { private: string; public: string } {
  for (let i = 0; i < 50; i++) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519");
    const ok = [pair.private, pair.public].every((k) => !(ssh2.utils.parseKey(k) instanceof Error));
    if (ok) return pair;
  }
  throw new Error("could not generate an ed25519 key pair that ssh2 can read back");
}

/**
 * An RSA key pair in OpenSSH format: the only type Lightsail's ImportKeyPair takes ("a
 * base64-encoded public key of the ssh-rsa type").
 */
export function generateRsa(bits = 3072): { private: string; public: string } {
  const pair = ssh2.utils.generateKeyPairSync("rsa", { bits });
  return { private: pair.private, public: pair.public };
}
