// The environment variables escp reads, in one place with no imports: the light modules that
// start processes (transfer/loopback-child.ts) need the names without what reads them.

/** Extra plugin modules, comma-separated (package names or paths). */
export const PLUGINS_ENV = 'ESCP_PLUGINS'
/** Options for every plugin, a JSON object of strings, numbers and booleans (`uringQueueDepth`). */
export const PLUGIN_OPTIONS_ENV = 'ESCP_PLUGIN_OPTIONS'
/** CPUs a server's stream workers keep to (a list such as 0-3,8). */
export const CPUMASK_ENV = 'ESCP_CPUMASK'
/** Where a loopback child logs its session (JSON lines). */
export const LOGFILE_ENV = 'ESCP_LOGFILE'
/** Tells a loopback child how many streams to boot workers for before the session's request. */
export const BOOT_STREAMS_ENV = 'ESCP_BOOT_STREAMS'
