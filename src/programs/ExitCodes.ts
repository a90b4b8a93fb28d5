/**
 * Process exit codes, documented in the README. The systemd unit lists the
 * ones that restarting cannot fix in `RestartPreventExitStatus=`.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  /** A configuration key is missing or invalid (sysexits EX_CONFIG). */
  config: 78
} as const
