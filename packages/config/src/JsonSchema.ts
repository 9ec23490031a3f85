import { z } from "zod"
import { ConfigFileSchema } from "./internal/schema.js"

/** The published JSON Schema of the config file (for editors: `$schema: ./token-broker.schema.json`). */
export const jsonSchema = (): Record<string, unknown> => ({
  ...z.toJSONSchema(ConfigFileSchema, { io: "input", target: "draft-2020-12", unrepresentable: "any" }),
  $id: "urn:token-broker:config",
  title: "token-broker configuration"
})

/** The schema file's exact text. */
export const jsonSchemaText = (): string => `${JSON.stringify(jsonSchema(), null, 2)}\n`
