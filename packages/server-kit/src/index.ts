export * as EffectLogger from "./EffectLogger.js"
export * as EntryPoint from "./EntryPoint.js"
export * as Logger from "./Logger.js"
export * as ResultPage from "./ResultPage.js"
