module Slate.Properties.PreludeProps

open Expecto

let allTests = testList "Prelude" []
