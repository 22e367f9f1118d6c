// escp's own engine packages. Kept apart from the commands, which load oclif, so that the
// entry point can name them before anything else loads.

/** The engine packages the CLI ships with and loads like any plugin. */
export const BUNDLED_PLUGINS: readonly string[] = ['@escp/engine-posix', '@escp/engine-shm', '@escp/engine-uring']

/** Their entry modules' paths. */
export function bundledPluginModules(): string[] {
  return BUNDLED_PLUGINS.map((name) => require.resolve(name))
}
