import { mcpServerSuite } from "./support/suite.js"

mcpServerSuite("remote")
