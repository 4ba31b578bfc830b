declare module "async-exit-hook" {
  /** Registers `hook` to run on exit signals; only the parts Cutover uses are typed. */
  const exitHook: ((hook: (done: () => void) => void) => void) & {
    hookedEvents(): string[];
    unhookEvent(event: string): void;
  };
  export default exitHook;
}
