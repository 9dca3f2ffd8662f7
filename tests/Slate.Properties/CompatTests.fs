module Slate.Properties.CompatTests

open Expecto

let allTests = testList "Compat" []
