module Slate.Properties.RetentionProps

open Expecto

let allTests = testList "Retention" []
