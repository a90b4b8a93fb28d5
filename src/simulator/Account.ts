/**
 * The simulated account's authorization: a fixed login code and an optional
 * two-step-verification password checked with real SRP (core.telegram.org/api/srp),
 * the server half of what GramJS's `computeCheck` does.
 */
import { createHash, randomBytes } from "node:crypto"
import { Api, password as Password } from "telegram"
import { long } from "./World.ts"

/** Telegram's 2048-bit SRP prime (the one GramJS accepts) and generator. */
const PRIME_HEX =
  "c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f48198a0aa7c14058229493d22530f4dbfa336f6e0ac925139543aed44cce7c3720fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f642477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4a4a695811051907e162753b56b0f6b410dba74d8a84b2a14b3144e0ef1284754fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f0d8115f635b105ee2e4e15d04b2454bf6f4fadf034b10403119cd8e3b92fcc5b"
const P = BigInt(`0x${PRIME_HEX}`)
const G = 3n

const sha256 = (...parts: ReadonlyArray<Buffer>) => {
  const hash = createHash("sha256")
  for (const part of parts) hash.update(part)
  return hash.digest()
}
const toBytes256 = (n: bigint) => Buffer.from(n.toString(16).padStart(512, "0"), "hex")
const fromBytes = (b: Buffer) => BigInt(`0x${b.toString("hex") || "0"}`)
const modPow = (base: bigint, exponent: bigint, modulus: bigint) => {
  let result = 1n
  let b = base % modulus
  let e = exponent
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus
    b = (b * b) % modulus
    e >>= 1n
  }
  return result
}

interface SrpChallenge {
  readonly srpId: bigint
  readonly b: bigint
  readonly B: bigint
}

export class Account {
  /** The code `auth.signIn` accepts, whatever number it was "sent" to. */
  readonly loginCode = "12345"
  private readonly algo = new Api.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow({
    salt1: randomBytes(32),
    salt2: randomBytes(16),
    g: Number(G),
    p: Buffer.from(PRIME_HEX, "hex")
  })
  private verifier: Promise<bigint> | undefined
  private challenge: SrpChallenge | undefined

  authorized: boolean
  private readonly password: string | undefined

  constructor(authorized: boolean, password: string | undefined) {
    this.authorized = authorized
    this.password = password
  }

  get hasPassword(): boolean {
    return this.password !== undefined
  }

  /** account.getPassword: the SRP parameters and a fresh server challenge B = k*v + g^b. */
  async passwordInfo(): Promise<Api.account.Password> {
    const common = {
      newAlgo: this.algo,
      newSecureAlgo: new Api.SecurePasswordKdfAlgoUnknown(),
      secureRandom: randomBytes(32)
    }
    if (this.password === undefined) return new Api.account.Password(common)
    const v = await this.passwordVerifier(this.password)
    const b = fromBytes(randomBytes(256)) % P
    const k = fromBytes(sha256(toBytes256(P), toBytes256(G)))
    const B = (k * v + modPow(G, b, P)) % P
    this.challenge = { srpId: randomBytes(8).readBigInt64LE(0), b, B }
    return new Api.account.Password({
      ...common,
      hasPassword: true,
      currentAlgo: this.algo,
      srp_B: toBytes256(B),
      srpId: long(this.challenge.srpId)
    })
  }

  /** auth.checkPassword: recomputes the client's proof M1 from the shared secret S = (A * v^u)^b. */
  async checkPassword(input: Api.TypeInputCheckPasswordSRP): Promise<boolean> {
    const challenge = this.challenge
    if (this.password === undefined || challenge === undefined || !(input instanceof Api.InputCheckPasswordSRP)) return false
    if (BigInt(input.srpId.toString()) !== challenge.srpId) return false
    this.challenge = undefined
    const v = await this.passwordVerifier(this.password)
    const aBytes = toBytes256(fromBytes(input.A))
    const bBytes = toBytes256(challenge.B)
    const u = fromBytes(sha256(aBytes, bBytes))
    const S = modPow((fromBytes(input.A) * modPow(v, u, P)) % P, challenge.b, P)
    const K = sha256(toBytes256(S))
    const pHash = sha256(toBytes256(P))
    const gHash = sha256(toBytes256(G))
    const expected = sha256(
      Buffer.from(pHash.map((byte, i) => byte ^ (gHash[i] ?? 0))),
      sha256(this.algo.salt1),
      sha256(this.algo.salt2),
      aBytes,
      bBytes,
      K
    )
    return expected.equals(input.M1)
  }

  /** v = g^x mod p, x from the password through GramJS's own KDF (PBKDF2, so computed once). */
  private passwordVerifier(password: string): Promise<bigint> {
    this.verifier ??= Password.computeDigest(this.algo, password).then(fromBytes)
    return this.verifier
  }
}
