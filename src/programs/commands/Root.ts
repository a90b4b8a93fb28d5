/** The `telegram-gateway` command and the flags every subcommand shares. */
import { Option } from "effect"
import { Command, Flag } from "effect/cli"

export const root = Command.make("telegram-gateway").pipe(
  Command.withSharedFlags({
    config: Flag.String("config").pipe(
      Flag.withDescription(
        "JSON config file; environment variables take precedence over it (default: $TELEGRAM_GATEWAY_CONFIG)"
      ),
      Flag.optional
    )
  }),
  Command.withDescription(
    "Telegram MTProto ingestion gateway: every message, edit and deletion of the configured chats into Redis, RabbitMQ and PostgreSQL"
  )
)

/** The `--config` path given to the root command, if any. */
export const configFile = (flags: { readonly config: Option.Option<string> }) => Option.getOrUndefined(flags.config)
