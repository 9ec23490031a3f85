import { mcpServerSuite } from "./support/suite.js"

mcpServerSuite("in-process")
