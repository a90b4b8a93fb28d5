/** Questions on the terminal for `login`: plain, or without echo for a password. */
import { Effect, Redacted } from "effect"
import * as Readline from "node:readline"
import { Writable } from "node:stream"

const ask = (question: string, echo: boolean) =>
  Effect.callback<string>((resume) => {
    process.stdout.write(question)
    // Without echo, what is typed goes to a sink instead of the terminal.
    const output = echo ? process.stdout : new Writable({ write: (_chunk, _encoding, done) => done() })
    const readline = Readline.createInterface({ input: process.stdin, output, terminal: process.stdin.isTTY === true })
    readline.question("", (answer) => {
      if (!echo) process.stdout.write("\n")
      readline.close()
      resume(Effect.succeed(answer.trim()))
    })
    return Effect.sync(() => readline.close())
  })

export interface Prompt {
  readonly ask: (question: string) => Effect.Effect<string>
  readonly askSecret: (question: string) => Effect.Effect<Redacted.Redacted<string>>
}

export const terminalPrompt: Prompt = {
  ask: (question) => ask(question, true),
  askSecret: (question) => ask(question, false).pipe(Effect.map(Redacted.make))
}
