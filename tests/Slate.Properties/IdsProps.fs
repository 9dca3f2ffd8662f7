module Slate.Properties.IdsProps

open Expecto

let allTests = testList "Ids" []
