# Install rules (AMQP_INSTALL): the static libraries and their public headers, amqp-cli, a
# CMake package and pkg-config files.
#
#   find_package(amqp 0.1 CONFIG REQUIRED [COMPONENTS core transport broker])
#   target_link_libraries(app PRIVATE amqp::transport amqp::broker)   # amqp::amqp comes along
#
#   pkg-config --static --cflags --libs amqp-transport amqp-broker
#
# The libraries are static only (no AMQP_API export macro: see README.md), so a consumer
# links what they use privately: OpenSSL and Threads for amqp::transport (standalone Asio is
# header-only and private: no installed header includes it except the opt-in
# amqp/transport/asio.hpp). Only include/ is installed, never src/ (STYLE.md §2).
include(CMakePackageConfigHelpers)

set(AMQP_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/amqp
    CACHE STRING "Where amqp-config.cmake is installed, relative to the prefix")
set(AMQP_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig
    CACHE STRING "Where the pkg-config files are installed, relative to the prefix")

# One export set per component: a consumer of the core alone needs neither OpenSSL nor
# Threads.
set(AMQP_INSTALLED_COMPONENTS core)
# amqp::trace (the frame tracer, amqp/trace.hpp) is standard library only like the core, and
# goes with it; the transport links it.
set_target_properties(amqp_trace PROPERTIES EXPORT_NAME trace)
install(TARGETS amqp amqp_trace EXPORT amqp-core-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/amqp/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
install(EXPORT amqp-core-targets NAMESPACE amqp:: DESTINATION ${AMQP_INSTALL_CMAKEDIR})

if(TARGET amqp_transport)
  list(APPEND AMQP_INSTALLED_COMPONENTS transport)
  set_target_properties(amqp_transport PROPERTIES EXPORT_NAME transport)
  install(TARGETS amqp_transport EXPORT amqp-transport-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/transport/include/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.hpp")
  install(EXPORT amqp-transport-targets NAMESPACE amqp:: DESTINATION ${AMQP_INSTALL_CMAKEDIR})
endif()

if(TARGET amqp_broker)
  list(APPEND AMQP_INSTALLED_COMPONENTS broker)
  set_target_properties(amqp_broker PROPERTIES EXPORT_NAME broker)
  install(TARGETS amqp_broker EXPORT amqp-broker-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/broker/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          FILES_MATCHING PATTERN "*.hpp")
  install(EXPORT amqp-broker-targets NAMESPACE amqp:: DESTINATION ${AMQP_INSTALL_CMAKEDIR})
endif()

if(TARGET amqp-cli)
  install(TARGETS amqp-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# The CMake package: amqp-config.cmake loads the components asked for (all installed ones by
# default), with their dependencies; the version file accepts 0.1.x for 0.1 (SameMinorVersion
# while the major version is 0).
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/amqp-config.cmake.in
  ${PROJECT_BINARY_DIR}/install/amqp-config.cmake INSTALL_DESTINATION ${AMQP_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/install/amqp-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/install/amqp-config.cmake
              ${PROJECT_BINARY_DIR}/install/amqp-config-version.cmake
        DESTINATION ${AMQP_INSTALL_CMAKEDIR})

# pkg-config files, relocatable: the prefix is found from the file's own place
# (${pcfiledir}), so `cmake --install --prefix ANY` gives working files.
if(IS_ABSOLUTE "${AMQP_INSTALL_PKGCONFIGDIR}")
  set(AMQP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH AMQP_PC_UP "/prefix/${AMQP_INSTALL_PKGCONFIGDIR}" "/prefix")
  string(REGEX REPLACE "/$" "" AMQP_PC_UP "${AMQP_PC_UP}")
  set(AMQP_PC_PREFIX "\${pcfiledir}/${AMQP_PC_UP}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(AMQP_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(AMQP_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
foreach(component IN LISTS AMQP_INSTALLED_COMPONENTS)
  if(component STREQUAL "core")
    set(pc amqp)
  else()
    set(pc amqp-${component})
  endif()
  configure_file(${CMAKE_CURRENT_LIST_DIR}/pkgconfig/${pc}.pc.in
                 ${PROJECT_BINARY_DIR}/install/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/install/${pc}.pc DESTINATION ${AMQP_INSTALL_PKGCONFIGDIR})
endforeach()
