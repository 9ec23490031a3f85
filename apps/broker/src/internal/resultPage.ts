import { ResultPage } from "@token-broker/server-kit"

/** The page a user sees after consent at the broker (the servers' one result page). */
export const resultPage = (result: ResultPage.ResultPageContent): string =>
  ResultPage.resultPage("token-broker", result)
