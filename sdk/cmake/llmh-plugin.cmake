# llmh_add_plugin(<target> KIND <format|tokenizer|backend|sampler|router>
#                 NAME <name> SOURCES <files...> [NO_INSTALL])
# Builds MODULE libllmh-<kind>-<name>.so against the SDK headers only, with
# hidden visibility (only llmh_plugin_describe is exported).
function(llmh_add_plugin target)
  cmake_parse_arguments(P "NO_INSTALL" "KIND;NAME" "SOURCES" ${ARGN})
  if(NOT P_KIND OR NOT P_NAME OR NOT P_SOURCES)
    message(FATAL_ERROR "llmh_add_plugin(${target}): KIND, NAME and SOURCES are required")
  endif()
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE llmh::sdk)
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME "llmh-${P_KIND}-${P_NAME}"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(LLMH_SDK_IN_TREE)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${LLMH_PLUGIN_OUTPUT_DIR}")
    if(NOT P_NO_INSTALL)
      install(TARGETS ${target} LIBRARY DESTINATION ${LLMH_PLUGIN_INSTALL_DIR})
    endif()
  elseif(NOT P_NO_INSTALL AND DEFINED LLMH_PLUGIN_DIR)
    install(TARGETS ${target} LIBRARY DESTINATION "${LLMH_PLUGIN_DIR}")
  endif()
endfunction()
