import { layerMemory } from "../src/GrantStore.js"
import { grantStoreConformance } from "../src/testing.js"

grantStoreConformance("memory", () => layerMemory, {
  capabilities: { crossProcessLeases: false, durable: false }
})
