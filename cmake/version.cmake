# Writes presence_version.h from version.h.in at build time, so that
# --version names the commit the binary was built from, not the one its build
# directory was configured from. Run by the presence_version_header target:
#   cmake -DTEMPLATE=... -DOUT=... -DSOURCE_DIR=... -DPROJECT_VERSION=...
#         [-DPRESENCE_GIT_COMMIT=...] -P version.cmake
# An explicit PRESENCE_GIT_COMMIT (e.g. a release tarball without .git) wins;
# otherwise `git rev-parse`, or "" without git. configure_file leaves OUT
# untouched when its text is unchanged, so only a new commit recompiles the
# few files that print the version.
if(NOT DEFINED PRESENCE_GIT_COMMIT)
  set(PRESENCE_GIT_COMMIT "")
  find_package(Git QUIET)
  if(GIT_FOUND)
    execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD
                    WORKING_DIRECTORY ${SOURCE_DIR}
                    OUTPUT_VARIABLE PRESENCE_GIT_COMMIT
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
endif()
configure_file(${TEMPLATE} ${OUT} @ONLY)
